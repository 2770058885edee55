"""campaigns remember the submit that made them until another submit adds to them

Revision ID: 0013
Revises: 0012

A submit that fails undoes a campaign it made, but only while no other submit has added to
it: two submits of one new campaign at once both found it missing, and the failing one's
undo deleted what the other had added.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DOC = "The submit still making it alone (NULL once it finished or another submit added)."


def upgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(sa.Column("creating_submit", sa.String(length=32), nullable=True))
    if op.get_bind().dialect.name == "postgresql":  # described like every column (0005)
        op.execute(f"COMMENT ON COLUMN campaigns.creating_submit IS '{DOC}'")


def downgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("creating_submit")
