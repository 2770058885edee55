"""Record values made storable on both databases, so one bad field never fails its page.

PostgreSQL refuses NUL in text and "\\u0000" in jsonb, both drivers refuse a lone
surrogate (JSON's "\\ud800" decodes to one), varchar(N) refuses a longer value and integer
one past 32 bits; SQLite takes all of it, which is how such rows got past tests. A source
reads leniently; this is the last word on what a column can hold, for every source.

Free text and JSON documents are cleaned by their column's type (StorableText,
StorableJson) as they are bound, by every insert and update alike; `Columns` does to a
record's columns what a type cannot as it binds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import JSON, BigInteger, Dialect, FromClause, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator, TypeEngine

from harvester.records import INT32

MAX_TEXT = 10_000  # a title, tag list or owner name longer is junk: cut, not dropped
_SURROGATE = re.compile("[\ud800-\udfff]")


def text(value: str) -> str:
    """`value` without NUL, each lone surrogate as U+FFFD."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    return value if value.isascii() else _SURROGATE.sub("\ufffd", value)


class StorableText(TypeDecorator[str]):
    """Free text from the outside world (a title, an error quoting a server, a URL): stored
    as `text` makes it, whichever statement binds it (an insert, an update, an outcome
    batch's array). The DDL is the impl's: the schema does not change."""

    impl: type[String] = Text  # String: StorableString's
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return text(value) if isinstance(value, str) else value


class StorableString(StorableText):
    """The same for a varchar(N) column (an owner or licence id a provider sends)."""

    impl = String
    cache_ok = True


def json_value(value: Any) -> Any:
    """A JSON document with every string (keys too) cleaned, and NaN or infinity as null."""
    if isinstance(value, str):
        return text(value)
    if isinstance(value, Mapping):
        return {text(str(key)): json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class StorableJson(TypeDecorator[Any]):
    """A JSON document (jsonb on PostgreSQL) stored as `json_value` makes it, whichever
    statement binds it: a URL list's file name in a campaign's settings may hold a lone
    surrogate (an undecodable byte), which SQLite stores and jsonb refuses."""

    impl = JSON
    cache_ok = True
    should_evaluate_none = True  # None is JSON null, as JSON's own default says

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(JSON())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return json_value(value)


def _plain(kind: TypeEngine[Any]) -> TypeEngine[Any]:
    """The type a column's TypeDecorator (StorableText, UtcDateTime) stands on."""
    return kind.impl_instance if isinstance(kind, TypeDecorator) else kind


class Columns:
    """Cleans values for the nullable columns of one table, where a type cannot as it binds:
    a value the column cannot hold (too long for its varchar, past 32 bits) dropped to NULL,
    free text cut at MAX_TEXT. Text itself is StorableText's, a JSON document StorableJson's."""

    def __init__(self, table: FromClause) -> None:
        types = {column.name: _plain(column.type) for column in table.columns}
        self._json = {name for name, kind in types.items() if isinstance(kind, JSON)}
        self._int32 = {
            name
            for name, kind in types.items()
            if isinstance(kind, Integer) and not isinstance(kind, BigInteger)
        }
        self._varchar = {
            name: kind.length
            for name, kind in types.items()
            if isinstance(kind, String) and kind.length
        }

    def clean(self, column: str, value: Any) -> Any:
        if column in self._json:
            return value
        if isinstance(value, str):
            limit = self._varchar.get(column)
            if limit is None:
                return value[:MAX_TEXT]
            return value if len(value) <= limit else None
        if column in self._int32 and isinstance(value, int) and abs(value) > INT32:
            return None
        return value
