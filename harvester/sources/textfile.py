"""Operator text files read as a stream: bounded memory whatever the file holds.

A list may be 11 million lines, or by mistake /dev/zero or a binary file. Lines are read
one at a time with a length cap, so memory follows the longest allowed line, not the file,
and a file that is not text is refused from its first block instead of being read forever.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from pathlib import Path

from harvester.errors import InputError

SNIFF_BYTES = 64 * 1024
MAX_LINE_CHARS = 1024 * 1024  # one CSV line; a field is capped lower, by csv (128 KB)


def _refuse_binary(path: Path, head: bytes) -> None:
    # A stray NUL in a field is a bad row, reported as such; NULs by the hundred are a binary
    # file (or /dev/zero). Most other binary files fail UTF-8 decoding in their first block.
    if head.count(0) > max(8, len(head) // 100):
        raise InputError(f"{path} is not a text file (NUL bytes in its first {len(head)} bytes)")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError as exc:
        where = f"byte {exc.start} of its first block"
        raise InputError(f"{path} is not UTF-8 text ({where})") from None


def text_lines(
    path: Path,
    *,
    max_line: int = MAX_LINE_CHARS,
    too_long: list[int] | None = None,
    what: str = "",
) -> Iterator[str]:
    """The file's lines (newlines kept, BOM dropped); InputError for a file that is not text
    or undecodable bytes, naming the line. A line longer than ``max_line`` is read past in
    bounded pieces and comes out blank, its number added to ``too_long`` (an InputError if
    no list is given)."""
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {what}{' ' if what else ''}{path}: {exc.strerror}") from None
    with raw:
        try:
            _refuse_binary(path, raw.peek(SNIFF_BYTES)[:SNIFF_BYTES])
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        number = 0
        while True:
            number += 1
            try:
                line = text.readline(max_line + 1)
            except UnicodeDecodeError as exc:
                raise InputError(f"{path}:{number}: not UTF-8 text ({exc.reason})") from None
            except OSError as exc:
                raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
            if not line:
                return
            if len(line) > max_line:
                if too_long is None:
                    raise InputError(f"{path}:{number}: line longer than {max_line} characters")
                while line and not line.endswith(("\n", "\r")):
                    line = text.readline(max_line)
                too_long.append(number)
                line = "\n"
            if "\0" in line and number == 1:
                raise InputError(f"{path} is not a text file (NUL byte on its first line)")
            yield line


def csv_records(path: Path, *, delimiter: str = ",") -> Iterator[tuple[int, list[str] | csv.Error]]:
    """(line number, cells) per CSV record, streamed; a record csv refuses (a field over
    its 128 KB limit, say) comes back as its csv.Error, and reading goes on after it.

    A quote left open makes csv read every following line into one field, silently to the
    end of the file or until the field limit: such a record (its quotes do not pair up)
    comes back as an error naming the lines it swallowed, numbered by its first line."""
    too_long: list[int] = []
    raw: list[str] = []  # the lines of the record being read

    def lines() -> Iterator[str]:
        for line in text_lines(path, too_long=too_long):
            raw.append(line)
            yield line

    reader = csv.reader(lines(), delimiter=delimiter)
    while True:
        start = reader.line_num + 1
        raw.clear()
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, _unclosed(start, reader.line_num, raw, exc) or exc
            continue
        if not cells and too_long and too_long[-1] == reader.line_num:
            yield reader.line_num, csv.Error(f"line longer than {MAX_LINE_CHARS} characters")
            continue
        unclosed = _unclosed(start, reader.line_num, raw)
        yield (start, unclosed) if unclosed else (reader.line_num, cells)


def _unclosed(
    start: int, end: int, raw: list[str], cause: csv.Error | None = None
) -> csv.Error | None:
    """The error for a record of several lines whose quotes do not pair up, else None."""
    if end <= start or sum(line.count('"') for line in raw) % 2 == 0:
        return None
    why = f" ({cause})" if cause is not None else ""
    return csv.Error(
        f"a quote opened on line {start} is not closed: lines {start}-{end} were read as "
        f"one field and are skipped{why}"
    )


def read_text_capped(path: Path, *, max_chars: int, what: str = "") -> str:
    """A small text file (a queries list) whole, refusing more than ``max_chars``."""
    parts: list[str] = []
    size = 0
    for line in text_lines(path, what=what):
        size += len(line)
        if size > max_chars:
            raise InputError(f"{path} is larger than {max_chars} characters")
        parts.append(line)
    return "".join(parts)
