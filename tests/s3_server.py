"""moto's S3 server on a free loopback port, with one empty bucket, for as long as needed."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def moto_s3(bucket: str) -> Iterator[str]:
    """The endpoint URL of a fresh moto S3 server holding `bucket`; killed on exit."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _create_bucket(f"{endpoint}/{bucket}"):
            if time.monotonic() > deadline:
                raise RuntimeError("moto's S3 server did not answer within 60 s")
            time.sleep(0.2)
        yield endpoint
    finally:
        server.kill()
        server.wait()


def _create_bucket(url: str) -> bool:
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="PUT"), timeout=5).close()
    except OSError:
        return False
    return True
