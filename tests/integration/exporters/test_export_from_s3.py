"""webdataset and vpr exports of a harvest stored in an S3 bucket (moto's server on
loopback): the images are read from the bucket, whole; nothing is looked for on local disk."""

from __future__ import annotations

import asyncio
import hashlib
import json
import tarfile
from pathlib import Path

import obstore
import pytest
from export_harvest import Harvest, files_by_id, rows_of
from obstore.store import S3Store
from s3_server import moto_s3

from harvester.cli import main
from harvester.storage.s3 import S3Storage

pytest.importorskip("moto.server", reason="moto[server] is a dev dependency")

BUCKET, URL = "exports", "s3://exports/harvest"
ALL = ("--campaign", "svpr", "--campaign", "street")


async def _upload(files: dict[str, bytes], env: dict[str, str]) -> None:
    """The harvest's stored files, put in the bucket under the same layout."""
    storage = S3Storage(URL, env)
    for relative, data in files.items():
        await storage.write(relative, data)
    await storage.close()


def test_webdataset_and_vpr_exports_read_their_images_from_the_bucket(
    harvest: Harvest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    nowhere = tmp_path / "no-local-files"  # the storage root: nothing is ever stored here
    table = tmp_path / "table"
    assert main(harvest.argv("export", *ALL, "--format", "csv", "--out", str(table))) == 0
    stored = {r["provider_id"]: r for r in rows_of(table / "images.csv")}
    with moto_s3(BUCKET) as endpoint:
        env = {
            "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test-access-key",
            "AWS_SECRET_ACCESS_KEY": "test-secret-key", "AWS_REGION": "us-east-1",
        }  # fmt: skip
        files = {p.relative_to(harvest.root).as_posix(): p.read_bytes()
                 for p in harvest.root.rglob("*.jpg")}  # fmt: skip
        asyncio.run(_upload(files, env))
        for name, value in {**env, "HARVESTER_STORAGE_URL": URL}.items():
            monkeypatch.setenv(name, value)

        def export(kind: str, out: Path) -> int:
            argv = ["--database-url", harvest.database_url, "--storage-root", str(nowhere)]
            return main([*argv, "export", *ALL, "--format", kind, "--out", str(out)])

        assert export("webdataset", tmp_path / "shards") == 0
        assert export("vpr", tmp_path / "vpr") == 0
        capsys.readouterr()
        assert export("vpr", tmp_path / "vpr") == 0
        again = capsys.readouterr().out
        gone = next(iter(stored.values()))["path"]
        bucket = S3Store(
            BUCKET, endpoint=endpoint, access_key_id="test-access-key",
            secret_access_key="test-secret-key", region="us-east-1",
            client_options={"allow_http": True},
        )  # fmt: skip
        obstore.delete(bucket, f"harvest/{gone}")
        assert export("webdataset", tmp_path / "broken") == 2
        said = capsys.readouterr().err.strip()
        assert f"cannot read stored image {gone} from {URL}" in said and len(said.splitlines()) == 1
    assert not nowhere.exists()

    with tarfile.open(tmp_path / "shards" / "00000.tar") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    metas = [json.loads(v) for k, v in members.items() if k.endswith(".json")]
    assert len(metas) == len(stored) == 24
    for meta in metas:
        data = members[f"{meta['key']}.jpg"]
        assert (
            hashlib.sha256(data).hexdigest()
            == meta["sha256"]
            == stored[meta["provider_id"]]["sha256"]
        )

    exported = sorted((tmp_path / "vpr").glob("images/*/*/*.jpg"))
    ids = {file: provider_id for provider_id, file in files_by_id(tmp_path / "vpr").items()}
    assert len(exported) == len(ids) > 20  # some hashed queries have no gallery image near
    for path in exported:
        row = stored[ids[str(path.relative_to(tmp_path / "vpr"))]]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == row["sha256"]
        assert path.stat().st_nlink == 1, "a copy: an object has no local file to link"
    keeps = len(list((tmp_path / "vpr").rglob(".keep")))  # in the folders with no image
    unchanged = len(exported) + 3 + keeps  # + README.txt and the two attribution files
    assert f"0 files added, 0 changed, {unchanged} unchanged" in again
