"""Engines for SQLite (embedded default) and Postgres, each set up for a concurrent queue."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import asyncpg
from sqlalchemy import event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import InvalidatePoolError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from harvester.config import async_database_url
from harvester.errors import ConfigError, DatabaseUnavailable, HarvesterError, RecordRefused
from harvester.redact import credential_values, redact_text, redact_url

# Code outside db/ names the engine by this alias and never imports SQLAlchemy itself.
Engine = AsyncEngine
# What a driver raises when the database is down, locked or refuses a statement (asyncpg
# raises OSError itself when it cannot connect; sqlite3 raises UnicodeEncodeError and
# OverflowError itself, unwrapped, for a value it cannot bind: a lone surrogate, an integer
# past 64 bits). Wrapped once, here, as DatabaseUnavailable or RecordRefused.
DRIVER_ERRORS = (SQLAlchemyError, OSError, UnicodeEncodeError, OverflowError)
# SQLSTATE classes that refuse a value: 22 data exception (NUL, too long, out of range, not
# of the type), 23 integrity constraint. Every other error is taken for an outage (08
# connection, 40 serialization or deadlock, 53 resources, 57 a restart...) and waited out.
REFUSED_SQLSTATES = ("22", "23")
# What SQLite says of a refused value (its other errors, "database is locked" among them,
# are outages), and a value refused before it reached a database: by sqlite3 (above) or by
# a column type's bind processing (a naive datetime, in SQLAlchemy's StatementError).
SQLITE_REFUSALS = (sqlite3.DataError, sqlite3.IntegrityError)
BIND_REFUSALS = (ValueError, OverflowError, TypeError)
# What the drivers raise themselves, on a connection used without SQLAlchemy (HeldConnection);
# asyncpg raises InternalClientError on a connection whose session the server ended.
RAW_DRIVER_ERRORS = (
    sqlite3.Error,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.ProtocolError,
    OSError,
)

# What the dialect or asyncpg raise for a URL query parameter they do not take (?foo=1 is
# connect()'s TypeError) or whose value is of the wrong kind (?command_timeout=abc):
# the URL's fault, said at start in one line, not a traceback.
URL_REFUSALS = (TypeError, ValueError)

MAX_PROBLEM_CHARS = 500  # of a driver's line, which may quote a value (a long title)

SQLITE_BUSY_TIMEOUT_S = 60.0
READ_ONLY = "harvester_read_only"


@asynccontextmanager
async def read_connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection for queries only: on SQLite it does not queue behind writers."""
    try:
        async with engine.connect() as connection:
            await connection.execution_options(**{READ_ONLY: True})
            yield connection
    except DRIVER_ERRORS as exc:
        raise database_error(exc) from exc


@asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One transaction, committed at the end of the block, rolled back on error."""
    try:
        async with engine.begin() as connection:
            yield connection
    except DRIVER_ERRORS as exc:
        raise database_error(exc) from exc


@asynccontextmanager
async def statement_connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection whose statements each commit on their own (PostgreSQL): one round trip
    for a statement that is atomic by itself, instead of BEGIN, it, COMMIT."""
    try:
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            yield connection
    except DRIVER_ERRORS as exc:
        raise database_error(exc) from exc


class HeldConnection:
    """One pooled connection held for a hot read, run on the driver itself.

    For a statement asked about once per image. Through SQLAlchemy's execution layer
    (check-out, BEGIN, compile-cache lookup, result adaptation, ROLLBACK, check-in) a small
    query cost the daemon ~0.9 ms of CPU; on the driver of a connection already held, one
    round trip, ~0.03 ms. A single SELECT needs no transaction of its own: SQLite runs it in
    an implicit one (under WAL it neither waits for writers nor blocks them), and so does
    PostgreSQL outside a transaction block. A connection that fails is dropped and the read
    tried once on another from the pool.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._connection: AsyncConnection | None = None
        self._driver: Any = None  # the held connection's driver, looked up once
        self._lock = asyncio.Lock()  # a connection runs one statement at a time

    async def fetch(self, sql: str, parameters: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Rows of one read-only statement, in the driver's own parameter style.

        A connection held since an earlier call may have been ended while idle (a server
        restart, an idle-session timeout, a proxy): it is dropped and the read asked once
        more on a fresh one, as the pool's pre-ping does for a check-out. Without that, the
        first lookups after every restart failed with the database up again."""
        async with self._lock:
            if self._connection is not None:
                try:
                    return await self._fetch(self._connection, sql, parameters)
                except (*DRIVER_ERRORS, *RAW_DRIVER_ERRORS) as exc:
                    await self._drop(exc)
            try:
                self._connection = await self.engine.connect()
                return await self._fetch(self._connection, sql, parameters)
            except (*DRIVER_ERRORS, *RAW_DRIVER_ERRORS) as exc:
                await self._drop(exc)
                raise database_error(exc) from exc

    async def _fetch(
        self, connection: AsyncConnection, sql: str, parameters: Sequence[Any]
    ) -> list[tuple[Any, ...]]:
        driver = self._driver
        if driver is None:  # a greenlet switch into the pool each time, if not kept
            driver = (await connection.get_raw_connection()).driver_connection
            self._driver = driver
        if self.dialect == "sqlite":
            rows = await driver.execute_fetchall(sql, parameters)
        else:
            rows = await driver.fetch(sql, *parameters)
        return [tuple(row) for row in rows]

    async def close(self) -> None:
        async with self._lock:
            connection, self._connection, self._driver = self._connection, None, None
            if connection is not None:
                with contextlib.suppress(*DRIVER_ERRORS, *RAW_DRIVER_ERRORS):
                    await connection.close()

    async def _drop(self, exc: BaseException) -> None:
        connection, self._connection, self._driver = self._connection, None, None
        if connection is not None:
            with contextlib.suppress(*DRIVER_ERRORS, *RAW_DRIVER_ERRORS):
                await connection.invalidate(exc)
                await connection.close()


def database_error(exc: BaseException) -> DatabaseUnavailable | RecordRefused:
    """A driver's error as harvester's: a value the database refused (RecordRefused), for
    the row to fail alone, or anything else (DatabaseUnavailable), to be waited out.

    Its message is the driver's first line: SQLAlchemy's text adds the statement and its
    parameters (a whole batch's values), which made a screen of SQL of an operator's error
    and of the message stored in a row whose outcome was refused. The rest is the cause's."""
    said = str(getattr(exc, "orig", None) or exc).strip().splitlines() or [""]
    problem = f"{type(exc).__name__}: {said[0][:MAX_PROBLEM_CHARS]}"
    return RecordRefused(problem) if _refused(exc) else DatabaseUnavailable(problem)


def _refused(exc: BaseException) -> bool:
    """Whether the first error down the chain that says what went wrong (a SQLSTATE, a
    sqlite3 error, a value nothing could bind) refuses a value. The first only: aiosqlite's
    closed connection is an OperationalError raised from a ValueError."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        state = getattr(link, "sqlstate", None)  # asyncpg's errors and SQLAlchemy's wraps
        if isinstance(state, str) and state:
            return state[:2] in REFUSED_SQLSTATES
        if isinstance(link, sqlite3.Error):
            return isinstance(link, SQLITE_REFUSALS)
        if isinstance(link, BIND_REFUSALS):
            return True
        link = getattr(link, "orig", None) or link.__cause__  # what SQLAlchemy wrapped
    return False


def insert_for(connection: AsyncConnection, model: Any) -> Any:
    """A dialect INSERT, so callers can say ON CONFLICT DO NOTHING on both databases."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    return dialect.insert(model)


async def database_problem(engine: AsyncEngine, timeout_s: float = 2.0) -> str | None:
    """Why the database does not answer a trivial query in time, or None when it does."""
    try:
        async with asyncio.timeout(timeout_s), read_connection(engine) as connection:
            await connection.execute(text("SELECT 1"))
    except TimeoutError:
        return f"the database did not answer within {timeout_s:g} s"
    except DatabaseUnavailable as exc:
        return f"the database is unreachable: {exc}"
    return None


async def require_database(engine: AsyncEngine, timeout_s: float = 10.0) -> None:
    """Fail at start, in one line an operator can act on, if the database does not answer."""
    path = engine.url.database if engine.url.get_backend_name() == "sqlite" else None
    try:
        if path and path != ":memory:":
            # Probed without aiosqlite: its thread would outlive a loop closed on this error.
            sqlite3.connect(path).close()
        async with asyncio.timeout(timeout_s), read_connection(engine) as connection:
            await connection.execute(text("SELECT 1"))
    except TimeoutError:
        why = f"it did not answer within {timeout_s:g} s"
    except URL_REFUSALS as exc:
        why = _refused_parameter(exc)
    except (DatabaseUnavailable, RecordRefused, sqlite3.Error) as exc:
        # SELECT 1 holds no record: what refused it is the URL (asyncpg's ?ssl=bogus).
        driver = exc.__cause__ if isinstance(exc, HarvesterError) else exc
        cause = getattr(driver, "orig", None) or driver or exc
        why = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    else:
        return
    raise _unusable(engine.url, why)


def _refused_parameter(exc: BaseException) -> str:
    said = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return f"the driver does not take its URL as written ({said})"


def _unusable(url: URL, why: str) -> ConfigError:
    """The one line an operator can act on when the database cannot be used at start: the
    URL's password (in its query too: asyncpg takes ?password=) blanked, here and in `why`."""
    plain = url.render_as_string(hide_password=False)
    secrets = [url.password or "", *credential_values(parse_qsl(urlsplit(plain).query))]
    return ConfigError(
        f"cannot use the database {redact_url(plain)}: {redact_text(why, secrets)}; check "
        "--database-url (HARVESTER_DATABASE_URL), that the server runs and the database exists"
    )


def create_engine(database_url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An engine whose transactions are safe for concurrent claimers on either database."""
    url = make_url(async_database_url(database_url))
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url.render_as_string(hide_password=False))
    try:
        engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size)
    except URL_REFUSALS as exc:
        raise _unusable(url, _refused_parameter(exc)) from None
    _ping_on_checkout(engine)
    return engine


def _ping_on_checkout(engine: AsyncEngine) -> None:
    """What `pool_pre_ping` does, in one round trip: SQLAlchemy's asyncpg ping is BEGIN, a
    no-op and ROLLBACK on every checkout, three round trips where a claim now takes one. A
    connection that fails it is dropped with the pool's older ones (as pre-ping does), and
    the checkout takes a new connection."""

    @event.listens_for(engine.sync_engine.pool, "checkout")
    def _ping(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        try:
            dbapi_connection.run_async(lambda driver: driver.execute("SELECT 1"))
        except RAW_DRIVER_ERRORS as exc:
            raise InvalidatePoolError(f"the pooled connection is gone: {exc}") from exc


class _SqliteFile:
    """Opens the database file without creating it once it exists.

    SQLite creates a missing file on connect. A file deleted under a running daemon would
    then come back empty at the user's path on the pool's next connection ("no such table"
    errors, and the file check saw it "replaced", not "deleted"). So an engine may create
    the file only until its first connection succeeds (a fresh path: `run`, `db upgrade`,
    the demo); from then on, or from the start when the file is already there, connections
    use the URI mode=rw and fail with "unable to open database file" instead."""

    def __init__(self, path: Path) -> None:
        # A URI with an empty authority, so '?', '#', '%', spaces and any leading '//' of
        # the path are the file's name and not URI syntax.
        self._uri = "file://" + quote(os.path.abspath(path), safe="/")
        self.exists = path.exists()

    def uri(self) -> str:
        return f"{self._uri}?mode={'rw' if self.exists else 'rwc'}"


def _sqlite_engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    database = parsed.database
    file = None
    if database and database != ":memory:" and "uri" not in parsed.query:  # a URI: as given
        try:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # under a file, or where nothing may be made
            raise _unusable(parsed, f"cannot make its folder: {exc.strerror or exc}") from None
        file = _SqliteFile(Path(database))
    engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

    if file is not None:

        @event.listens_for(engine.sync_engine, "do_connect")
        def _open(_dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]) -> None:
            cargs[:] = [file.uri()]
            cparams["uri"] = True

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        if file is not None:
            file.exists = True  # created by now, if it was not there before
        # Take transaction control from the driver so BEGIN IMMEDIATE is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers queue on the database lock up front instead of failing on upgrade;
        # readers (read_connection) take no lock at all under WAL.
        reading = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")

    return engine
