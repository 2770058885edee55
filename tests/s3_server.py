"""moto's S3 server on a free loopback port, with one empty bucket, for as long as needed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

# Its server (werkzeug) says where it listens; asked for port 0, it binds a free one. A port
# chosen free here and bound by moto later could be taken in between.
_LISTENING = re.compile(rb"Running on (http://127\.0\.0\.1:[1-9]\d*)")


@contextmanager
def moto_s3(bucket: str) -> Iterator[str]:
    """The endpoint URL of a fresh moto S3 server holding `bucket`; killed on exit."""
    with tempfile.TemporaryFile() as said:  # a file, not a pipe: its request log never fills
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
            stdout=subprocess.DEVNULL, stderr=said,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while not (endpoint := _listening(said)) or not _create_bucket(f"{endpoint}/{bucket}"):
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"moto's S3 server did not answer within 60 s: {_log(said)}")
                time.sleep(0.2)
            yield endpoint
        finally:
            server.kill()
            server.wait()


def _log(said: IO[bytes]) -> bytes:
    """What the server wrote so far (read at its offset 0: the server's own writes share
    the file's position)."""
    return os.pread(said.fileno(), 1 << 16, 0)


def _listening(said: IO[bytes]) -> str:
    found = _LISTENING.search(_log(said))
    return found[1].decode() if found else ""


def _create_bucket(url: str) -> bool:
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="PUT"), timeout=5).close()
    except OSError:
        return False
    return True
