"""queue throttles: tries a server deferred (a 429, a Retry-After), counted apart from attempts

Revision ID: 0012
Revises: 0011

A throttled try is the server asking for time, not a failure: it no longer spends one of
max_attempts (five 429s in a row failed an image), and is bounded by its own, larger budget.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("tasks", "images")
DOC = "Tries the server deferred (429, Retry-After) this round; not attempts."


def upgrade() -> None:
    for table in TABLES:
        op.add_column(
            table, sa.Column("throttles", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
        if op.get_bind().dialect.name == "postgresql":  # described like every column (0005)
            op.execute(f"COMMENT ON COLUMN {table}.throttles IS '{DOC}'")


def downgrade() -> None:
    for table in TABLES:
        op.drop_column(table, "throttles")
