"""Lines for a person's terminal: what users and remote APIs wrote is shown, never obeyed.

A campaign name, a title or an error message from a server may hold ESC, BEL, CR or a
newline; printed raw they would retitle the window, clear the screen or forge a table line.
Every human-facing line goes through `say` (a table's with a width, or `fit`), which writes each
character Python's repr would escape (C0/C1 controls, bidi overrides, other unprintables) as
its escape, `\\x1b` or `\\n`; JSON output escapes them itself. A backslash is written `\\\\`,
as repr writes it: else a title typed as the four characters `\\x1b` would read the same as
one holding a real ESC. So a line is escaped once: escaping it again doubles its backslashes.
"""

from __future__ import annotations

import sys
from typing import TextIO

WIDTH = 80


def shown(text: str) -> str:
    """`text` with every unprintable character and every backslash as its backslash escape."""
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(c if c.isprintable() and c != "\\" else repr(c)[1:-1] for c in text)


def fit(line: str, width: int = WIDTH) -> str:
    """A table line, escaped, cut to the terminal width an operator is promised (80 columns)."""
    line = shown(line)
    return line if len(line) <= width else line[: width - 1] + "…"


def say(
    line: str, file: TextIO | None = None, *, flush: bool = False, width: int | None = None
) -> None:
    """Print one line for a person (stdout unless told), escaped: it stays one line; with a
    width, a table line cut to it."""
    print(shown(line) if width is None else fit(line, width), file=file or sys.stdout, flush=flush)
