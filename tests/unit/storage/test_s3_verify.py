"""An object counts as written only once the store shows it whole: size, then MD5 or SHA-256.

The store's answers are stood in for (what a flaky proxy or a broken gateway could say),
so each way a PUT can go wrong is shown to fail the write, not to record it as stored."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from harvester.storage import s3
from harvester.storage.s3 import S3Storage

DATA = b"\xff\xd8 a whole jpeg \xff\xd9"
ENV = {
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_REGION": "us-east-1",
}
MD5 = hashlib.md5(DATA, usedforsecurity=False).hexdigest()


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    async def bytes_async(self) -> bytes:
        return self.data


def _store(monkeypatch: pytest.MonkeyPatch, *, size: int, e_tag: str, kept: bytes) -> list[str]:
    """A store that accepts the PUT, then describes and serves the object as given."""
    calls: list[str] = []

    async def put(_store: Any, key: str, data: bytes, **_: Any) -> None:
        calls.append(f"put {key}")

    async def head(_store: Any, key: str) -> dict[str, Any]:
        calls.append(f"head {key}")
        return {"size": size, "e_tag": e_tag}

    async def get(_store: Any, key: str) -> _Body:
        calls.append(f"get {key}")
        return _Body(kept)

    monkeypatch.setattr(s3.obstore, "put_async", put)
    monkeypatch.setattr(s3.obstore, "head_async", head)
    monkeypatch.setattr(s3.obstore, "get_async", get)
    return calls


async def test_an_object_of_the_right_size_and_md5_etag_is_written(monkeypatch):
    calls = _store(monkeypatch, size=len(DATA), e_tag=f'"{MD5}"', kept=DATA)
    await S3Storage("s3://bucket/pre", ENV).write("a/b.jpg", DATA)
    assert calls == ["put a/b.jpg", "head a/b.jpg"]  # keys under the store's prefix; no read-back


@pytest.mark.parametrize(
    ("size", "e_tag", "kept", "said"),
    [
        (len(DATA) - 1, f'"{MD5}"', DATA, f"is {len(DATA) - 1} bytes"),
        (len(DATA), '"' + "0" * 32 + '"', DATA, "another checksum"),
        # An ETag that is no MD5 (SSE-KMS, multipart): the object is read back and compared.
        (len(DATA), '"kms-etag-3"', DATA[:-1] + b"!", "another checksum"),
    ],
)
async def test_an_object_the_store_does_not_show_whole_fails_the_write(
    monkeypatch, size: int, e_tag: str, kept: bytes, said: str
):
    _store(monkeypatch, size=size, e_tag=e_tag, kept=kept)
    with pytest.raises(OSError, match=said):
        await S3Storage("s3://bucket/pre", ENV).write("a/b.jpg", DATA)


async def test_a_non_md5_etag_is_verified_by_reading_the_object_back(monkeypatch):
    calls = _store(monkeypatch, size=len(DATA), e_tag='"kms-etag-3"', kept=DATA)
    await S3Storage("s3://bucket/pre", ENV).write("a/b.jpg", DATA)
    assert calls[-1] == "get a/b.jpg"
