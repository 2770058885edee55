"""ix_images_duplicate_of: deleting an image looks up the rows naming it as their duplicate
(the self-referencing key, ON DELETE SET NULL), and without an index each lookup read the
whole table: deleting a 20,000-image campaign on SQLite ran past 2 minutes, its time growing
with the square of its size. Only rows that name one are indexed (skipped duplicates).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAMED = sa.text("duplicate_of IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_images_duplicate_of",
        "images",
        ["duplicate_of"],
        postgresql_where=NAMED,
        sqlite_where=NAMED,
    )


def downgrade() -> None:
    op.drop_index("ix_images_duplicate_of", table_name="images")
