"""Tables operators read while the daemon runs; states mirrored by CHECK constraints.

A column of text from the outside world (a title, a URL, an error quoting a server) is
StorableText or StorableString, and every JSON column StorableJson: whichever statement
writes it, what it binds is storable.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from harvester.db.docs import TABLES
from harvester.db.storable import StorableJson, StorableString, StorableText


class TaskState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ImageState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    STORED = "stored"
    SKIPPED = "skipped"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Provider(enum.StrEnum):
    FLICKR = "flickr"
    MAPILLARY = "mapillary"
    URLS = "urls"


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both databases (SQLite would otherwise hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        """None on asyncpg, which hands back aware UTC datetimes itself: a claim's seven
        times a row, 700 calls a batch, were a third of its client CPU (~0.8 ms)."""
        if dialect.driver == "asyncpg":
            return self.impl_instance.dialect_impl(dialect).result_processor(dialect, coltype)
        return super().result_processor(dialect, coltype)


JsonDoc = StorableJson()
BigId = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _in(column: str, values: type[enum.StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JsonDoc}


# campaigns.name is varchar(200): PostgreSQL refuses a longer name, SQLite would keep it.
CAMPAIGN_NAME_CHARS = 200
SUBMIT_ID_CHARS = 32


class Campaign(Base):
    __tablename__ = "campaigns"
    __table_args__ = (CheckConstraint(_in("provider", Provider), name="provider"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(CAMPAIGN_NAME_CHARS), unique=True)
    provider: Mapped[str] = mapped_column(String(20))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    # Set while daemons must not claim its rows (nothing is cancelled): by an operator
    # (`campaigns pause`, reason "paused") or by a daemon whose key was rejected ("invalid_key").
    paused_at: Mapped[datetime | None]
    paused_reason: Mapped[str | None] = mapped_column(String(40))
    paused_message: Mapped[str | None] = mapped_column(StorableText)
    # The submit that made it, until that submit finishes or another adds to it: only then
    # may a failing submit undo the campaign, or it would delete another submit's rows.
    creating_submit: Mapped[str | None] = mapped_column(String(SUBMIT_ID_CHARS))


class _QueueColumns:
    """The lease/attempt columns shared by both queues (tasks and images)."""

    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    max_attempts: Mapped[int] = mapped_column(Integer, default=5, server_default=text("5"))
    # Tries the server deferred (a 429, a Retry-After) in the current round: not attempts.
    throttles: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    not_before: Mapped[datetime]
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(StorableText)
    # The stable short code of the last failure or skip (http_404, timeout, duplicate...).
    reason: Mapped[str | None] = mapped_column(String(40))
    # Whether that failure was transient: `jobs retry` requeues these by default.
    retryable: Mapped[bool | None] = mapped_column(Boolean)
    # Times an operator queued the row again (attempts restart; reason and last_error stay).
    requeues: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    # The lease owner (daemon) that recorded the row's end: the dashboard's rate per daemon.
    finished_by: Mapped[str | None] = mapped_column(String(200))


def _in_state(state: str) -> dict[str, Any]:
    """A partial index's condition, on both databases."""
    return _where(f"state = '{state}'")


def _where(condition: str) -> dict[str, Any]:
    """A partial index's condition, on both databases. Every claim and outcome writes each
    row anew (it changes `state`, so never a HOT update) and so adds an entry to every
    index whose condition the new row meets: an index narrowed to the rows its queries
    ask about is one index entry fewer per row per claim or outcome."""
    return {"postgresql_where": text(condition), "sqlite_where": text(condition)}


def _queue_args(table: str) -> tuple[CheckConstraint | Index, ...]:
    """What both queues (tasks, images) need alike: the attempts check and the claim path's
    indexes, i.e. queued rows by due time (and per campaign, for claims while some campaign
    is paused), running rows by lease expiry, counts per campaign by state, and rows by
    reason code."""
    return (
        CheckConstraint("attempts >= 0 AND max_attempts >= 1", name="attempts"),
        Index(f"ix_{table}_claimable", "not_before", "id", **_in_state("queued")),
        Index(
            f"ix_{table}_claimable_campaign",
            "campaign_id",
            "not_before",
            "id",
            **_in_state("queued"),
        ),
        Index(f"ix_{table}_leased", "lease_expires_at", **_in_state("running")),
        Index(f"ix_{table}_campaign_state", "campaign_id", "state"),
        # Asked only for named reasons (`jobs --reason`, `jobs retry --reason`, a paused
        # campaign's failures): rows without a code (queued, running, stored) stay out.
        Index(
            f"ix_{table}_campaign_reason", "campaign_id", "reason", **_where("reason IS NOT NULL")
        ),
    )


class Task(_QueueColumns, Base):
    __tablename__ = "tasks"
    __table_args__ = (
        CheckConstraint(_in("state", TaskState), name="state"),
        *_queue_args("tasks"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(20), default=TaskState.QUEUED)
    dedupe_key: Mapped[str] = mapped_column(String(500), unique=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)


class Image(_QueueColumns, Base):
    __tablename__ = "images"
    __table_args__ = (
        UniqueConstraint("provider", "provider_id"),
        CheckConstraint(_in("state", ImageState), name="state"),
        CheckConstraint(_in("provider", Provider), name="provider"),
        *_queue_args("images"),
        CheckConstraint("shard >= 0", name="shard"),
        # The duplicate check asks only about stored rows (db/duplicates.py).
        Index("ix_images_source_sha256", "source_sha256", **_in_state("stored")),
        # Deleting an image finds the duplicates naming it (ON DELETE SET NULL) here, not
        # by reading the table: a campaign's delete would grow with the square of its size.
        Index("ix_images_duplicate_of", "duplicate_of", **_where("duplicate_of IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(20))
    provider_id: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(20), default=ImageState.QUEUED)
    group_name: Mapped[str] = mapped_column(String(200))
    shard: Mapped[int] = mapped_column(Integer)
    file_name: Mapped[str] = mapped_column(String(300))
    path: Mapped[str | None] = mapped_column(Text)
    source_url: Mapped[str | None] = mapped_column(StorableText)
    source_width: Mapped[int | None] = mapped_column(Integer)
    source_height: Mapped[int | None] = mapped_column(Integer)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    sha256: Mapped[str | None] = mapped_column(String(64))
    source_sha256: Mapped[str | None] = mapped_column(String(64))
    bytes: Mapped[int | None] = mapped_column(BigInteger)
    frame: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("images.id", ondelete="SET NULL"))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    accuracy: Mapped[int | None] = mapped_column(Integer)
    captured_at: Mapped[datetime | None]
    # Naive ISO 8601, to the provider's precision: a camera's wall clock is no UTC instant.
    captured_local: Mapped[str | None] = mapped_column(StorableString(19))
    uploaded_at: Mapped[datetime | None]
    heading: Mapped[float | None] = mapped_column(Float)
    is_pano: Mapped[bool | None] = mapped_column(Boolean)
    sequence_id: Mapped[str | None] = mapped_column(StorableString(200))
    owner: Mapped[str | None] = mapped_column(StorableString(200))
    owner_name: Mapped[str | None] = mapped_column(StorableText)
    title: Mapped[str | None] = mapped_column(StorableText)
    tags: Mapped[str | None] = mapped_column(StorableText)
    license_id: Mapped[str | None] = mapped_column(StorableString(40))
    raw: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)
    skip_reason: Mapped[str | None] = mapped_column(StorableText)
    phash: Mapped[str | None] = mapped_column(String(16))  # 64-bit perceptual hash, hex


class ImageHit(Base):
    """Which campaign and query found an image: one file, listed under every finder."""

    __tablename__ = "image_hits"

    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    query: Mapped[str] = mapped_column(StorableString(500), primary_key=True)
    role: Mapped[str | None] = mapped_column(String(40))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)
    created_at: Mapped[datetime]


class License(Base):
    __tablename__ = "licenses"

    provider: Mapped[str] = mapped_column(String(20), primary_key=True)
    license_id: Mapped[str] = mapped_column(StorableString(40), primary_key=True)
    name: Mapped[str] = mapped_column(StorableText)
    url: Mapped[str | None] = mapped_column(StorableText)


class ShardCounter(Base):
    """Next file index per (provider, group): shards are fixed when a row is created."""

    __tablename__ = "shard_counters"

    provider: Mapped[str] = mapped_column(String(20), primary_key=True)
    group_name: Mapped[str] = mapped_column(String(200), primary_key=True)
    next_index: Mapped[int] = mapped_column(BigInteger, default=0)


class RateShare(Base):
    """One holder's leased slice of a shared rate limit (a key's, or a host's).

    The slices of live holders of a key add up to at most its limit; a row whose lease
    ran out counts for nothing and is deleted by the next holder to renew. ``key`` names
    the limit (a hash of an API key, never the key itself); ``holder`` is host:pid:tag, or for a
    daemon's host:pid:start:tag as its lease owner names are, so that its next start on the host
    drops the slices of one that was killed.
    """

    __tablename__ = "rate_shares"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200), primary_key=True)
    rate: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[datetime]


class RateThrottle(Base):
    """The latest 429 on a shared limit, kept with the key so that every holder slows down.

    ``cut_at``: when the key's latest cut began (429s within a renewal interval of it are
    the same overload); ``paused_until``: no holder calls before it (a short Retry-After).
    The next holder to renew deletes a row that is over a lease old and no longer pauses.
    """

    __tablename__ = "rate_throttles"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    cut_at: Mapped[datetime]
    paused_until: Mapped[datetime]


QUEUE_TABLES = (Task, Image)
QueueModel = type[Task] | type[Image]


def states_of(model: QueueModel) -> type[TaskState] | type[ImageState]:
    """The state enum of a queue table (both share queued/running/failed/cancelled)."""
    return TaskState if model is Task else ImageState


def _document(metadata: MetaData) -> None:
    """The operators' descriptions as table and column comments (COMMENTs on Postgres)."""
    for name, (doc, columns) in TABLES.items():
        table = metadata.tables[name]
        table.comment = doc
        for column, meaning in columns.items():
            table.c[column].comment = meaning


_document(Base.metadata)
