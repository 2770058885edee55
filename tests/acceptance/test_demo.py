"""`harvester demo` (what `make demo` runs): interrupted, moved to another port, re-run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from harvester.demo import PREFERRED_PORT

CLI = [sys.executable, "-m", "harvester.cli", "demo"]


def _stored_files(home: Path) -> list[Path]:
    return [p for p in (home / "data").rglob("*.jpg") if p.is_file()]


def test_demo_resumes_after_a_kill_even_on_another_port_and_reruns_add_nothing(tmp_path: Path):
    first = subprocess.Popen(CLI, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)  # fmt: skip
    home = tmp_path / "harvester-demo"
    deadline = time.monotonic() + 60
    while len(_stored_files(home)) < 20 if home.exists() else True:
        assert time.monotonic() < deadline and first.poll() is None, "demo stored nothing"
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.communicate(timeout=60)  # reaped, its pipe read to the end and closed

    with socket.socket() as squatter:  # the emulator's usual port is taken this time
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", PREFERRED_PORT))
        squatter.listen()
        second = subprocess.run(CLI, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"127.0.0.1:{PREFERRED_PORT}" not in second.stdout.splitlines()[0]
    assert "stored" in second.stdout and " queued" not in second.stdout
    files = {p: p.stat().st_mtime_ns for p in _stored_files(home)}
    assert not [p for p in home.rglob("*") if ".tmp-" in p.name]

    third = subprocess.run(CLI, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert third.returncode == 0, third.stdout + third.stderr
    assert "0 new images" in third.stdout and "0 tasks" in third.stdout
    assert {p: p.stat().st_mtime_ns for p in _stored_files(home)} == files, "files rewritten"
