"""campaigns can be paused (by an operator, or by the daemon on a rejected key)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 09:55:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("paused_reason", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("paused_message", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        for column in ("paused_message", "paused_reason", "paused_at"):
            batch.drop_column(column)
