"""a path only on stored rows; a perceptual hash per stored image

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 09:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


PHASH_DOC = (
    "64-bit perceptual hash of the stored picture (hex); "
    "near-duplicates are close in Hamming distance."
)


def upgrade() -> None:
    # Rows were given their planned path at birth; exports read `path` as "this file exists".
    op.execute("UPDATE images SET path = NULL WHERE state <> 'stored'")
    op.add_column("images", sa.Column("phash", sa.String(length=16), nullable=True))
    if op.get_bind().dialect.name == "postgresql":  # described like every column (0005)
        op.execute(f"COMMENT ON COLUMN images.phash IS '{PHASH_DOC}'")


def downgrade() -> None:
    op.drop_column("images", "phash")
    if op.get_bind().dialect.name == "sqlite":
        shard = "printf('%05d', shard)"
    else:
        shard = "lpad(shard::text, 5, '0')"
    op.execute(
        "UPDATE images SET path = provider || '/' || group_name || '/' || "
        f"{shard} || '/' || file_name WHERE path IS NULL"
    )
