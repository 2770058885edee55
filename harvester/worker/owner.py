"""Lease owner names that say which process holds a row, so a restart can tell if it died."""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path


def _start_ticks(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (start time) counted after the parenthesised command name, which may hold spaces.
    return stat.rsplit(")", 1)[1].split()[19]


def new_owner() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid) or 0}:{secrets.token_hex(3)}"


def is_dead_local_owner(owner: str) -> bool:
    """True only when the owner ran on this host and that exact process is gone."""
    parts = owner.split(":")
    if len(parts) != 4 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    return _start_ticks(int(parts[1])) != parts[2]
