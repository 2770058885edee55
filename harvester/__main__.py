"""The `harvester` program (also `python -m harvester`): the command line, loaded under a
Ctrl-C guard.

Loading the command line takes seconds on a busy machine (numpy, SQLAlchemy, aiohttp); a
Ctrl-C meanwhile ends it with one line, as it does once it runs, instead of a traceback out
of whichever library was loading.
"""

from __future__ import annotations

import signal
import sys


def main() -> int:
    try:
        from harvester.loading import collector_paused

        with collector_paused():
            from harvester.cli import main as command_line

        return command_line()
    except KeyboardInterrupt:
        print("harvester: interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # on the way out: a late Ctrl-C is moot


if __name__ == "__main__":
    sys.exit(main())
