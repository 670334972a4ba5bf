"""Failed sign-in buckets: one row per client address with recent wrong keys, shared by every
API process.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 09:05:00
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
    op.create_table(
        "signin_failures",
        sa.Column("address", sa.String(length=255), nullable=False),
        sa.Column("tokens", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_signin_failures")),
    )
    op.create_index("ix_signin_failures_updated_at", "signin_failures", ["updated_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_signin_failures_updated_at", table_name="signin_failures")
    op.drop_table("signin_failures")
