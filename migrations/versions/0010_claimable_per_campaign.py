"""claimable per campaign: queued rows by (campaign_id, not_before, id), so that a claim while
a campaign is paused does not walk the paused campaign's queued rows

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

QUEUED = sa.text("state = 'queued'")


def upgrade() -> None:
    for table in ("tasks", "images"):
        op.create_index(
            f"ix_{table}_claimable_campaign",
            table,
            ["campaign_id", "not_before", "id"],
            postgresql_where=QUEUED,
            sqlite_where=QUEUED,
        )


def downgrade() -> None:
    for table in ("tasks", "images"):
        op.drop_index(f"ix_{table}_claimable_campaign", table_name=table)
