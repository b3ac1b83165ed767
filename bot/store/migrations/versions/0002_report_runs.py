"""digest_runs becomes report_runs: it claims budget warnings as well as digests.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ALTER TABLE ... RENAME on both databases; no table refers to this one.
    op.rename_table("digest_runs", "report_runs")


def downgrade() -> None:
    op.rename_table("report_runs", "digest_runs")
