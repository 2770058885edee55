"""Start-up imports run with the cycle collector paused, then frozen; every process that
goes on working (the command line's, each image worker) collects again afterwards."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path


def test_command_line_and_workers_collect_again_after_loading_frozen(tmp_path: Path) -> None:
    program = tmp_path / "program.py"
    program.write_text(
        textwrap.dedent(
            f"""
            import asyncio, gc, json, sys
            from harvester.cli import main

            async def collector(here):
                # A forked worker inherits the fork server's count of collections so far.
                collections = sum(generation["collections"] for generation in gc.get_stats())
                return gc.isenabled(), gc.get_freeze_count(), collections

            async def ask_a_worker():
                from harvester.worker.pool import ImagePool

                pool = ImagePool(1, 60.0)
                await pool.start()
                try:
                    return await pool.job(collector)
                finally:
                    await pool.close()

            if __name__ == "__main__":
                # With argv given, main() returns without the freeze it makes at exit.
                code = main(["--database-url=sqlite:///{tmp_path}/h.db",
                             "--storage-root={tmp_path}/data", "--log-level=warning",
                             "run", "--until-idle", "--processes=1"])
                ours = gc.isenabled(), gc.get_freeze_count()
                print(json.dumps([code, ours, asyncio.run(ask_a_worker())]))
            """
        )
    )
    out = subprocess.run(
        [sys.executable, str(program)], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    code, (ours_enabled, ours_frozen), (worker_enabled, worker_frozen, collections) = json.loads(
        out.stdout.splitlines()[-1]
    )
    assert code == 0
    assert ours_enabled, "the command line left the cycle collector off"
    assert ours_frozen > 10_000, "what the daemon loaded was not frozen"
    # Importing the worker's modules with the collector running makes ~170 collections.
    assert collections < 60, f"the fork server imported with the collector running: {collections}"
    assert worker_enabled, "a worker forked from the fork server does not collect"
    assert worker_frozen > 10_000, "what the fork server loaded was not frozen"


def test_collector_paused_resumes_only_a_collector_that_ran() -> None:
    import gc

    from harvester.loading import collector_paused

    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    try:
        with collector_paused():
            assert not gc.isenabled()
            made = [[] for _ in range(1000)]
        assert gc.isenabled()
        assert gc.get_freeze_count() >= frozen + len(made)
        gc.disable()
        with collector_paused():
            pass
        assert not gc.isenabled(), "a collector paused before was switched on"
    finally:
        gc.enable()
        gc.unfreeze()
