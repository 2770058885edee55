"""The daemon's process never makes pixels: it does not load the pixel libraries; its
workers have them, imported once by the fork server they are forked from."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

PIXEL_LIBRARIES = ("numpy", "PIL", "cv2", "pyarrow")


def test_daemon_process_runs_without_pixel_libraries_its_workers_have_them_preloaded(
    tmp_path: Path,
) -> None:
    # As an operator runs it: submit, cancel, then `run --until-idle` on a queue with nothing
    # to do (a list of no rows is refused, a cancelled row is not claimed); then a
    # worker forked as the daemon's are says what it got from the fork server. An object
    # the server imported is frozen there (gc.freeze), so the worker's collector lists
    # none of it; a module the worker imported itself would be listed.
    (tmp_path / "list.csv").write_text("url\nhttp://img.example/a.jpg\n")
    program = tmp_path / "program.py"
    program.write_text(
        textwrap.dedent(
            f"""
            import asyncio, gc, json, sys
            from harvester.cli import main
            from harvester.worker.pool import ImagePool

            PIXELS = {PIXEL_LIBRARIES!r}
            FLAGS = ["--database-url=sqlite:///{tmp_path}/h.db",
                     "--storage-root={tmp_path}/data", "--log-level=warning"]

            def loaded():
                return sorted({{m.split(".")[0] for m in sys.modules}} & set(PIXELS))

            async def preloaded(here):
                unfrozen = {{id(o) for o in gc.get_objects()}}
                pipeline = sys.modules["harvester.imaging.pipeline"]
                return loaded(), id(pipeline) not in unfrozen

            async def ask_a_worker():
                pool = ImagePool(1, 60.0)
                await pool.start()
                try:
                    return await pool.job(preloaded)
                finally:
                    await pool.close()

            if __name__ == "__main__":
                codes = [
                    main([*FLAGS, "submit", "urls", "--campaign", "c", "{tmp_path}/list.csv"]),
                    main([*FLAGS, "cancel", "--campaign", "c"]),
                    main([*FLAGS, "status"]),
                    main([*FLAGS, "jobs", "list"]),
                    main([*FLAGS, "run", "--until-idle", "--processes=1"]),
                ]
                daemon = loaded()
                worker, frozen = asyncio.run(ask_a_worker())
                print(json.dumps([codes, daemon, worker, frozen]))
            """
        )
    )
    out = subprocess.run(
        [sys.executable, str(program)], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    codes, daemon, worker, frozen = json.loads(out.stdout.splitlines()[-1])
    assert codes == [0, 0, 0, 0, 0], out.stdout
    assert daemon == [], "the daemon's process loaded pixel libraries"
    assert {"numpy", "PIL", "cv2"} <= set(worker)
    assert frozen, "the worker imported the pixel code itself, not the fork server"
