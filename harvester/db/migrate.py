"""Schema upgrades through Alembic, safe when several daemons start at once.

Alembic is imported only when there is something to do: a database already at the head
revision is told so by one query (importing Alembic, which brings Mako and Pygments, costs
~0.25 s of CPU at every start).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.session import read_connection
from harvester.errors import DatabaseUnavailable, InputError, SchemaTooNew

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
# Any fixed number works; it only has to be the same for every harvester daemon.
ADVISORY_LOCK_ID = 0x68617276  # "harv"
_NOT_A_LITERAL = object()


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply migrations; on Postgres a transaction-scoped advisory lock serialises daemons.
    A database a newer harvester upgraded is refused in one line, left as it is."""
    if revision == "head":
        found = await _database_revisions(engine)
        if found is not None and found == [declared_head()]:
            return
        _refuse_unknown(found or [])
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(text(f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK_ID})"))
        await connection.run_sync(_command, "upgrade", revision)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    """Revert to `revision`; one Alembic cannot go to (unknown, or not below the current
    one) is the operator's InputError, the schema as it was."""
    from alembic.util import CommandError

    try:
        async with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                await connection.execute(text(f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK_ID})"))
            await connection.run_sync(_command, "downgrade", revision)
    except CommandError as exc:
        raise InputError(f"cannot downgrade to {revision!r}: {exc}") from None


async def current_revision(engine: AsyncEngine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    async with engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def _database_revisions(engine: AsyncEngine) -> list[str] | None:
    """The revisions the database says it is at; None if it cannot say (a new database,
    no answer at all): Alembic's to sort out."""
    try:
        async with read_connection(engine) as connection:
            found = await connection.execute(text("SELECT version_num FROM alembic_version"))
            return list(found.scalars())
    except DatabaseUnavailable:  # no alembic_version table yet, or no answer at all
        return None


def _refuse_unknown(found: list[str]) -> None:
    """A revision no migration file here declares was written by a newer harvester (a
    rolling upgrade's first daemon, or this machine's harvester rolled back)."""
    known = {declared.get("revision") for declared in _migrations()}
    unknown = sorted(r for r in found if r not in known)
    if unknown:
        raise SchemaTooNew(
            f"the database is at schema revision {', '.join(unknown)}, which this harvester"
            f" does not know (its newest is {declared_head()}): a newer harvester upgraded"
            " it; run that version here too"
        )


def declared_head() -> str | None:
    """The head revision as the files in migrations/versions declare it, read without
    Alembic; None where that is not certain (no files, several heads, computed values)."""
    revisions: set[str] = set()
    below: set[str] = set()
    for declared in _migrations():
        revision, down = declared.get("revision"), declared.get("down_revision")
        if not isinstance(revision, str) or declared.get("depends_on") is not None:
            return None
        if isinstance(down, str):
            below.add(down)
        elif isinstance(down, tuple) and all(isinstance(d, str) for d in down):
            below.update(down)
        elif down is not None:
            return None
        revisions.add(revision)
    heads = revisions - below
    return heads.pop() if len(heads) == 1 else None


@functools.cache
def _migrations() -> tuple[dict[str, object], ...]:
    """The declarations of each file in migrations/versions, parsed once for every upgrade."""
    return tuple(_declarations(path) for path in sorted((MIGRATIONS / "versions").glob("*.py")))


def _declarations(path: Path) -> dict[str, object]:
    """A migration file's top-level `name = literal` (or `name: type = literal`) values;
    a name given anything but a literal maps to a value no check accepts."""
    found: dict[str, object] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name):
            try:
                found[target.id] = ast.literal_eval(value)
            except (ValueError, TypeError, SyntaxError):
                found[target.id] = _NOT_A_LITERAL
    return found


def _command(connection: Connection, name: str, revision: str) -> None:
    from alembic import command

    config = alembic_config()
    config.attributes["connection"] = connection
    getattr(command, name)(config, revision)
