"""Object storage (S3 and what speaks its protocol: MinIO, Ceph, R2), through obstore.

`HARVESTER_STORAGE_URL=s3://bucket/prefix`; endpoint, region and credentials come from the
standard AWS variables (`AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, web identity, container and
instance credentials), as other tools read them. Keys are `<prefix>/<the local layout>`.

One PUT makes an object visible whole or not at all, so there are no temp names. A write
returns only once the object is verified: its size, and its MD5 against the ETag (a
single-part upload's ETag is its MD5), or, where the store's ETag is something else
(SSE-KMS, say), a read-back compared by SHA-256.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import obstore
from obstore.exceptions import BaseError
from obstore.store import S3Store

from harvester.storage.base import check_relative

_FROM_ENV = {
    "AWS_ACCESS_KEY_ID": "access_key_id",
    "AWS_SECRET_ACCESS_KEY": "secret_access_key",
    "AWS_SESSION_TOKEN": "session_token",
    "AWS_DEFAULT_REGION": "region",
    "AWS_REGION": "region",
}
_MD5_ETAG = re.compile(r'^"?([0-9a-f]{32})"?$')


class S3Storage:
    def __init__(self, url: str, env: Mapping[str, str] | None = None) -> None:
        if not url.startswith("s3://") or not url[5:].split("/", 1)[0]:
            raise ValueError(f"not an s3://bucket[/prefix] URL: {url!r}")
        env = os.environ if env is None else env
        endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or ""
        config: dict[str, str] = {
            option: env[name] for name, option in _FROM_ENV.items() if env.get(name)
        }
        if endpoint:
            config["endpoint"] = endpoint
        self._url = url.rstrip("/")
        # Plain HTTP only when the operator's endpoint says so (a MinIO on the LAN, a test).
        # What is not named here (web identity, container and instance credentials) obstore
        # reads from the process environment itself.
        self._store = S3Store.from_url(
            self._url,
            config=config,  # type: ignore[arg-type]
            client_options={"allow_http": endpoint.startswith("http://")},
        )

    @property
    def location(self) -> str:
        return self._url

    def key(self, relative: PurePosixPath | str) -> str:
        return "/".join(check_relative(relative))

    async def write(self, relative: PurePosixPath | str, data: bytes) -> None:
        key = self.key(relative)
        try:
            await obstore.put_async(self._store, key, data, use_multipart=False)
            meta = await obstore.head_async(self._store, key)
            etag = _MD5_ETAG.match(meta.get("e_tag") or "")
            if etag is not None:
                same = etag[1] == hashlib.md5(data, usedforsecurity=False).hexdigest()
            else:
                stored = bytes(await (await obstore.get_async(self._store, key)).bytes_async())
                same = hashlib.sha256(stored).digest() == hashlib.sha256(data).digest()
        except BaseError as exc:
            raise OSError(errno.EIO, f"{self._url}/{key}: {type(exc).__name__}") from exc
        if meta["size"] != len(data) or not same:
            raise OSError(
                errno.EIO,
                f"{self._url}/{key}: stored object is {meta['size']} bytes"
                f"{'' if same else ' with another checksum'}, {len(data)} were written",
            )

    def written(self, relative: PurePosixPath | str) -> None:
        """Nothing to note: an object is durable once its PUT is verified."""

    async def read(self, relative: PurePosixPath | str) -> bytes:
        key = self.key(relative)
        try:
            return bytes(await (await obstore.get_async(self._store, key)).bytes_async())
        except FileNotFoundError:
            raise
        except BaseError as exc:
            raise OSError(errno.EIO, f"{self._url}/{key}: {type(exc).__name__}") from exc

    def local_path(self, relative: PurePosixPath | str) -> Path | None:
        """Objects have no path here: they are read."""
        return None

    async def list(self, folder: str = "") -> list[str]:
        """The keys under a folder of the prefix (every key by default), relative to it."""
        keys: list[str] = []
        try:
            async for batch in obstore.list(
                self._store, prefix=self.key(folder) if folder else None
            ):
                keys.extend(str(meta["path"]) for meta in batch)
        except BaseError as exc:
            raise OSError(errno.EIO, f"{self._url}/{folder}: {type(exc).__name__}") from exc
        return sorted(keys)

    async def remove(self, relative: PurePosixPath | str) -> bool:
        """Delete a stored object; False if it was gone. S3 answers a DELETE the same either
        way, so a HEAD asks first: the count of removed files stays true when a delete is
        finished by running it again."""
        key = self.key(relative)
        try:
            await obstore.head_async(self._store, key)
        except FileNotFoundError:
            return False
        except BaseError as exc:
            raise OSError(errno.EIO, f"{self._url}/{key}: {type(exc).__name__}") from exc
        try:
            await obstore.delete_async(self._store, key)
        except BaseError as exc:
            raise OSError(errno.EIO, f"{self._url}/{key}: {type(exc).__name__}") from exc
        return True

    async def sync(self) -> None:
        """Nothing to wait for: every write was verified before it returned."""

    def sweep_temp_files(self) -> int:
        """None exist: an object appears whole or not at all."""
        return 0

    async def close(self) -> None:
        """The store's connections close with it."""
