"""rate shares: leased slices of per-key and per-host rate limits, shared by every process

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_shares",
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("rate", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", "holder", name=op.f("pk_rate_shares")),
    )


def downgrade() -> None:
    op.drop_table("rate_shares")
