"""The image pool: real worker processes, real sockets, real deaths."""

from __future__ import annotations

import asyncio
import operator
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from harvester.emulator.images import ImageRecipe, render
from harvester.imaging import Metadata, SizeRules, UnsupportedFormat
from harvester.worker.pool import ImagePool, WorkerLost, process_image

RULES = SizeRules(max_side=1024, min_side=100, quality=90)
META = Metadata()


@asynccontextmanager
async def running_pool(
    processes: int, timeout_s: float = 60.0, depth: int = 2
) -> AsyncIterator[ImagePool]:
    pool = ImagePool(processes, timeout_s, depth=depth)
    await pool.start()
    try:
        yield pool
    finally:
        await pool.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers signal 0; it has stopped all the same.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


async def _until(condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_answers_reach_their_callers_and_every_worker_takes_a_share() -> None:
    async with running_pool(2) as pool:
        products = await asyncio.gather(*(pool.run(operator.mul, i, 3) for i in range(40)))
        pids = await asyncio.gather(*(pool.run(_slow_pid) for _ in range(8)))
        assert products == [i * 3 for i in range(40)]
        assert set(pids) == set(pool.held())
        assert len(set(pids)) == 2


def _slow_pid() -> int:
    time.sleep(0.1)
    return os.getpid()


async def test_an_error_raised_in_a_worker_reaches_its_caller_intact() -> None:
    jpeg_bytes = render(ImageRecipe(seed=5, width=1200, height=900))
    async with running_pool(1) as pool:
        with pytest.raises(ZeroDivisionError):
            await pool.run(operator.truediv, 1, 0)
        with pytest.raises(UnsupportedFormat) as refused:
            await pool.run(process_image, b"<html>not an image</html>", RULES, META)
        assert refused.value.reason == "html"
        processed, source_sha, cpu_s = await pool.run(process_image, jpeg_bytes, RULES, META)
        assert processed.jpeg.startswith(b"\xff\xd8") and len(source_sha) == 64 and cpu_s > 0


async def test_a_dying_worker_fails_only_the_request_it_was_on() -> None:
    async with running_pool(1, depth=3) as pool:
        first = list(pool.held())
        died, *rest = await asyncio.gather(
            pool.run(os._exit, 3),
            pool.run(operator.mul, 6, 7),
            pool.run(operator.add, 1, 2),
            return_exceptions=True,
        )
        assert isinstance(died, WorkerLost) and "exit code 3" in str(died)
        assert rest == [42, 3]  # queued behind it, then answered by the replacement
        assert len(pool.held()) == 1 and list(pool.held()) != first
        assert not _alive(first[0])


async def test_an_overrunning_request_is_killed_and_the_one_behind_it_is_served() -> None:
    async with running_pool(1, timeout_s=0.5) as pool:
        started = time.monotonic()
        hung, behind = await asyncio.gather(
            pool.run(time.sleep, 60), pool.run(operator.mul, 2, 3), return_exceptions=True
        )
        assert isinstance(hung, WorkerLost) and "took longer than 0.5 s" in str(hung)
        assert behind == 6
        assert time.monotonic() - started < 20


class _Bomb:
    """Pickles fine here; rebuilding it in the worker raises."""

    def __reduce__(self) -> tuple[object, tuple[int, int]]:
        return (operator.truediv, (1, 0))


class _Picky(Exception):
    """An error whose pickled form cannot be rebuilt (its __init__ wants two arguments)."""

    def __init__(self, first: str, second: str) -> None:
        super().__init__(f"{first} {second}")


def _raise_picky() -> None:
    raise _Picky("a", "b")


async def test_requests_and_answers_that_cannot_travel_fail_alone() -> None:
    async with running_pool(1) as pool:
        pids = list(pool.held())
        with pytest.raises(ZeroDivisionError):
            await pool.run(operator.mul, _Bomb(), 1)
        with pytest.raises(AttributeError, match="pickle"):
            await pool.run(operator.mul, lambda: 1, 1)
        with pytest.raises(WorkerLost, match="answer cannot be read"):
            await pool.run(_raise_picky)
        assert await pool.run(operator.mul, 4, 4) == 16
        assert list(pool.held()) == pids  # the worker survived both


async def test_closing_fails_requests_in_flight_and_queued_at_once() -> None:
    pool = ImagePool(1, 60.0, depth=1)
    await pool.start()
    on_it = asyncio.create_task(pool.run(time.sleep, 1))
    queued = asyncio.create_task(pool.run(operator.mul, 2, 2))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await pool.close()
    async with asyncio.timeout(10):
        for task in (on_it, queued):
            with pytest.raises(WorkerLost, match="closed"):
                await task
    assert time.monotonic() - started < 10


async def test_a_cancelled_caller_leaves_the_pool_working() -> None:
    async with running_pool(1, depth=1) as pool:
        busy = asyncio.create_task(pool.run(time.sleep, 0.5))
        queued = asyncio.create_task(pool.run(operator.mul, 2, 2))  # waits behind `busy`
        await asyncio.sleep(0.1)
        busy.cancel()
        queued.cancel()
        assert await pool.run(operator.mul, 3, 3) == 9
        assert busy.cancelled() and queued.cancelled()


async def test_a_closed_pool_has_stopped_its_workers_and_refuses_work() -> None:
    pool = ImagePool(2, 60.0)
    await pool.start()
    pids = list(pool.held())
    assert all(_alive(pid) for pid in pids)
    await pool.close()
    assert not any(_alive(pid) for pid in pids)
    with pytest.raises(WorkerLost, match="closed"):
        await pool.run(operator.mul, 1, 1)


def test_workers_exit_when_the_daemon_is_killed() -> None:
    # The daemon dies without closing anything; its workers must not linger.
    script = textwrap.dedent(
        """
        import asyncio, operator, os, sys
        from harvester.worker.pool import ImagePool

        async def main():
            pool = ImagePool(2, 60.0)
            await pool.start()
            await pool.run(operator.mul, 1, 1)
            print(" ".join(map(str, pool.held())), flush=True)
            os._exit(9)

        asyncio.run(main())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) == 2, out.stderr
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in pids):
        assert time.monotonic() < deadline, "workers outlived their daemon"
        time.sleep(0.05)


async def test_workers_leave_terminal_and_group_signals_to_the_daemon() -> None:
    # Ctrl-C reaches the whole process group; the daemon drains through its workers.
    async with running_pool(1) as pool:
        await pool.run(operator.mul, 1, 1)  # the worker is up and serving
        busy = asyncio.create_task(pool.run(_slow_pid))
        await asyncio.sleep(0.05)
        for signum in (signal.SIGINT, signal.SIGTERM):
            os.kill(next(iter(pool.held())), signum)
        assert await busy == next(iter(pool.held()))


def test_a_worker_starts_frozen_and_without_the_database_layer(tmp_path: Path) -> None:
    # Started as the `harvester` program starts it: every worker runs the program's script
    # again, so what the command line imports, each worker imports too. What the fork server
    # imported for it is frozen: the worker's collector does not walk it.
    program = tmp_path / "program.py"
    program.write_text(
        textwrap.dedent(
            f"""
            import asyncio, gc, sys
            from functools import partial
            from harvester.cli import main
            from harvester.config import load_settings
            from harvester.worker.fetching import portable, worker_service
            from harvester.worker.pool import ImagePool

            DATABASE = ("sqlalchemy", "alembic", "aiosqlite", "asyncpg", "harvester.db")

            async def loaded(here):
                return [m for m in sys.modules if m.startswith(DATABASE)], gc.get_freeze_count() > 0

            async def run():
                settings = load_settings(
                    database_url="sqlite:///{tmp_path}/h.db", storage_root="{tmp_path}/data"
                )
                setup = partial(worker_service, portable(settings), "warning")
                pool = ImagePool(2, 60.0, setup=setup)
                await pool.start()
                try:
                    print(await asyncio.gather(pool.job(loaded), pool.job(loaded)))
                finally:
                    await pool.close()

            if __name__ == "__main__":
                asyncio.run(run())
            """
        )
    )
    out = subprocess.run(
        [sys.executable, str(program)], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[([], True), ([], True)]"
