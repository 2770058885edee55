"""The real command line run in process, for the command tests of this folder."""

from __future__ import annotations

import asyncio

import pytest
import structlog

from harvester.cli import main


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `harvester *argv`, run in a thread (it runs its own
    event loop). What was printed before is not the command's output."""
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(argv))
    structlog.reset_defaults()  # main() pointed the logs at a stream capsys will close
    out, err = capsys.readouterr()
    return code, out, err


async def cli_out(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """stdout of a command that must succeed (its stderr is the failure's message)."""
    code, out, err = await cli(capsys, *argv)
    assert code == 0, err
    return out
