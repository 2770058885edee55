"""which daemon finished a row, so the dashboard can show each daemon's rate

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 10:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("tasks", "images"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("finished_by", sa.String(length=200), nullable=True))


def downgrade() -> None:
    for table in ("tasks", "images"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("finished_by")
