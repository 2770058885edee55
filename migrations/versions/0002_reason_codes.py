"""reason codes, retryable flag and requeue count on both queues

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 09:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

QUEUES = ("tasks", "images")


def upgrade() -> None:
    for table in QUEUES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("reason", sa.String(length=40), nullable=True))
            batch.add_column(sa.Column("retryable", sa.Boolean(), nullable=True))
            batch.add_column(
                sa.Column("requeues", sa.Integer(), server_default=sa.text("0"), nullable=False)
            )
        op.create_index(f"ix_{table}_campaign_reason", table, ["campaign_id", "reason"])
    # Rows skipped before this revision: their message starts with the code ("too_small: ...").
    op.execute(
        "UPDATE images SET reason = substr(skip_reason, 1, instr(skip_reason, ':') - 1)"
        " WHERE state = 'skipped' AND instr(skip_reason, ':') BETWEEN 2 AND 41"
        if op.get_context().dialect.name == "sqlite"
        else "UPDATE images SET reason = split_part(skip_reason, ':', 1)"
        " WHERE state = 'skipped' AND position(':' in skip_reason) BETWEEN 2 AND 41"
    )


def downgrade() -> None:
    for table in QUEUES:
        op.drop_index(f"ix_{table}_campaign_reason", table_name=table)
        with op.batch_alter_table(table) as batch:
            for column in ("requeues", "retryable", "reason"):
                batch.drop_column(column)
