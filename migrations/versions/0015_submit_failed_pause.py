"""campaigns.paused_reason also names submit_failed: a campaign whose submit failed after a
daemon had taken or stored rows of it is paused and kept instead of deleted (its files and
rows in flight stay accounted for).

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DOC = (
    "Why: paused (an operator), invalid_key (the API refused the key) "
    "or submit_failed (its submit failed after a daemon began on it)."
)
BEFORE = "Why: paused (an operator) or invalid_key (the API refused the key)."


def _comment(text: str) -> None:
    if op.get_bind().dialect.name == "postgresql":  # described like every column (0005)
        op.execute(f"COMMENT ON COLUMN campaigns.paused_reason IS '{text}'")


def upgrade() -> None:
    _comment(DOC)


def downgrade() -> None:
    _comment(BEFORE)
