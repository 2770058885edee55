"""images.captured_local: the camera's zone-less capture time, backfilled for Flickr rows

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 13:10:00

Flickr's `datetaken` is a wall clock with no zone, so `captured_at` (UTC) stayed empty and
the time lived only in the raw record. The reading below is harvester/sources/flickr_parse.py
`taken_local` as of this revision, spelled out: a migration must not change when the code does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 5000
DOCS = {
    "captured_at": (
        "When the photo was taken, in UTC; empty when the provider gives no time zone "
        "(Flickr: see captured_local)."
    ),
    "captured_local": (
        "When the photo was taken by the camera's wall clock, no zone: naive ISO 8601 to the "
        "provider's precision (Flickr's datetaken: 2019-05-04T12:30:00, 2019-05 or 2019)."
    ),
}
# datetakengranularity -> (strptime pattern, characters of ISO 8601 kept); 8 (circa) is none.
PRECISION = {0: ("%Y-%m-%d %H:%M:%S", 19), 4: ("%Y-%m", 7), 6: ("%Y", 4)}
IMAGES = sa.table(
    "images",
    sa.column("id", sa.BigInteger),
    sa.column("provider", sa.String),
    sa.column("raw", sa.JSON),
    sa.column("captured_local", sa.String),
)


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        return None


def taken_local(raw: Any) -> str | None:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return None
    if not isinstance(raw, dict) or _integer(raw.get("datetakenunknown")) == 1:
        return None
    text, granularity = raw.get("datetaken"), _integer(raw.get("datetakengranularity"))
    precision = PRECISION.get(0 if granularity is None else granularity)
    if not isinstance(text, str) or precision is None:
        return None
    pattern, keep = precision
    try:
        return datetime.strptime(text.strip()[:keep], pattern).isoformat()[:keep]
    except ValueError:
        return None


def _flickr_rows(bind: sa.Connection) -> Iterator[list[tuple[int, Any]]]:
    """(id, raw) of Flickr rows, a batch at a time in id order (bounded memory)."""
    last = 0
    while True:
        batch = bind.execute(
            sa.select(IMAGES.c.id, IMAGES.c.raw)
            .where(IMAGES.c.provider == "flickr", IMAGES.c.id > last)
            .order_by(IMAGES.c.id)
            .limit(BATCH)
        ).all()
        if not batch:
            return
        last = batch[-1][0]
        yield [(row[0], row[1]) for row in batch]


def upgrade() -> None:
    op.add_column("images", sa.Column("captured_local", sa.String(length=19), nullable=True))
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":  # described like every column (0005)
        for column, doc in DOCS.items():
            quoted = doc.replace("'", "''")
            op.execute(f"COMMENT ON COLUMN images.{column} IS '{quoted}'")
    fill = (
        sa.update(IMAGES)
        .where(IMAGES.c.id == sa.bindparam("row_id"))
        .values(captured_local=sa.bindparam("taken"))
    )
    for batch in _flickr_rows(bind):
        values = [{"row_id": i, "taken": taken_local(raw)} for i, raw in batch]
        values = [v for v in values if v["taken"] is not None]
        if values:
            bind.execute(fill, values)


def downgrade() -> None:
    op.drop_column("images", "captured_local")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("COMMENT ON COLUMN images.captured_at IS 'When the photo was taken.'")
