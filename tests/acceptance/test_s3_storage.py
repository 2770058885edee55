"""Harvesting into an S3 bucket (moto's server on loopback): killed mid-run, resumed, read back."""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import Harness, kill_group
from s3_server import moto_s3
from test_daemon_lifecycle import FAULTS

from harvester.storage.s3 import S3Storage

pytest.importorskip("moto.server", reason="moto[server] is a dev dependency")

BUCKET = "harvest-bucket"
PREFIX = "datasets/run-1"


@pytest.fixture
def s3_endpoint() -> Iterator[str]:
    with moto_s3(BUCKET) as endpoint:
        yield endpoint


class S3Harness(Harness):
    endpoint: str = ""

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(
            HARVESTER_STORAGE_URL=f"s3://{BUCKET}/{PREFIX}",
            AWS_ENDPOINT_URL=self.endpoint,
            AWS_ACCESS_KEY_ID="test-access-key",
            AWS_SECRET_ACCESS_KEY="test-secret-key",
            AWS_REGION="us-east-1",
            **extra,
        )


async def test_a_harvest_into_a_bucket_survives_a_sigkill_and_reads_back_whole(
    s3_endpoint: str, sqlite_url: str, tmp_path: Path
) -> None:
    harness = S3Harness(sqlite_url, tmp_path / "unused-local-root")
    harness.endpoint = s3_endpoint
    await harness.start_emulator(*FAULTS)
    try:
        expected = await harness.submit("street", 120, tmp_path)
        daemon = await harness.start_daemon()
        await harness.wait_for_stored(30)
        kill_group(daemon)
        await daemon.wait()
        code, out = await harness.cli("run", "--until-idle", limit_s=240)
        assert code == 0, out
        rows = await harness.rows()
        # The dataset is exported from the bucket, with the daemon's settings.
        shards = tmp_path / "shards"
        argv = ("export", "--campaign", "street", "--format", "webdataset", "--out", str(shards))
        code, out = await harness.cli(*argv)
        assert code == 0, out
    finally:
        await harness.stop_emulator()

    wrong = [(r.provider_id, r.state) for r in rows if r.state != expected[r.provider_id]]
    assert not wrong and len(rows) == len(expected)
    assert all(r.last_error for r in rows if r.state == "failed")
    stored = {r.path: r for r in rows if r.state == "stored"}
    storage = S3Storage(f"s3://{BUCKET}/{PREFIX}", _aws_env(s3_endpoint))
    # Nothing doubled or left over: the bucket holds exactly the stored rows' objects,
    # each whole (the checksum the row recorded), read back through the backend.
    assert set(await storage.list()) == set(stored)
    for path, row in stored.items():
        assert hashlib.sha256(await storage.read(path)).hexdigest() == row.sha256, path
    assert not (tmp_path / "unused-local-root").exists(), "wrote to local disk instead"
    exported: dict[str, str] = {}
    for shard in sorted(shards.glob("*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".json"):
                    record = json.load(tar.extractfile(member))  # type: ignore[arg-type]
                    data = tar.extractfile(member.name[:-5] + ".jpg").read()  # type: ignore[union-attr]
                    exported[record["path"]] = hashlib.sha256(data).hexdigest()
    assert exported == {path: row.sha256 for path, row in stored.items()}, (
        "the export holds every stored image, read whole from the bucket"
    )


def _aws_env(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "test-access-key",
        "AWS_SECRET_ACCESS_KEY": "test-secret-key",
        "AWS_REGION": "us-east-1",
    }
