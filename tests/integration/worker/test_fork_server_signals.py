"""A Ctrl-C or TERM sent to the process group while the fork server imports is the daemon's.

The server starts first thing in `run` and imports for about a second; a signal then used to
end it with a KeyboardInterrupt traceback on the terminal (or kill it, for TERM)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

PROBE = textwrap.dedent(
    """
    import os, signal, time
    import multiprocessing.forkserver as forkserver
    from harvester.worker.forkserver import start_fork_server

    start_fork_server()
    pid = forkserver._forkserver._forkserver_pid
    os.kill(pid, signal.SIGINT)  # while it is still importing what workers need
    os.kill(pid, signal.SIGTERM)
    with open(f"/proc/{pid}/status") as status:
        ignored = int(next(l for l in status if l.startswith("SigIgn:")).split()[1], 16)
    time.sleep(1.0)
    os.kill(pid, 0)  # still there: raises if the signals ended it
    print("ignored", ignored >> (signal.SIGINT - 1) & 1, ignored >> (signal.SIGTERM - 1) & 1)
    print("handler kept", signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    """
)


def test_the_fork_server_ignores_the_groups_ctrl_c_and_term_while_it_imports() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "ignored 1 1" in done.stdout and "handler kept True" in done.stdout, done.stdout
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr, done.stderr
