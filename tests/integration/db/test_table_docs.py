"""The job tables are described once: the README section and the Postgres COMMENTs agree."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from harvester.db.docs import TABLES
from harvester.db.migrate import upgrade
from harvester.db.models import Base
from harvester.db.session import create_engine

README = Path(__file__).resolve().parents[3] / "README.md"


def test_every_table_an_operator_reads_has_every_column_described() -> None:
    for table, (_, columns) in TABLES.items():
        assert set(columns) == set(Base.metadata.tables[table].c.keys()), table


def test_the_readme_section_carries_every_description() -> None:
    readme = README.read_text(encoding="utf-8")
    section = readme[readme.index("### The job tables") :]
    for table, (doc, columns) in TABLES.items():
        assert f"`{table}`: {doc}" in section
        for column, meaning in columns.items():
            assert f"| `{column}` | {meaning.replace('|', chr(92) + '|')} |" in section


async def test_postgres_carries_the_same_text_as_comments(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    await upgrade(engine)
    async with engine.connect() as connection:
        for table, (doc, columns) in TABLES.items():
            found = await connection.execute(
                text("SELECT obj_description(CAST(:t AS regclass), 'pg_class')"), {"t": table}
            )
            assert found.scalar_one() == doc
            rows = await connection.execute(
                text(
                    "SELECT a.attname, col_description(a.attrelid, a.attnum) FROM pg_attribute a"
                    " WHERE a.attrelid = CAST(:t AS regclass) AND a.attnum > 0"
                    " AND NOT a.attisdropped"
                ),
                {"t": table},
            )
            assert dict(rows.all()) == columns, table
    await engine.dispose()
