"""The carbon planner's shared facts: each region's recorded intensity per 30-minute slot, and
each worker class's measured training throughput per model.

Revision ID: 0011
Revises: 0006
Create Date: 2026-12-03 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "intensity_slots",
        sa.Column("region", sa.String(length=64), nullable=False),
        sa.Column("slot", sa.BigInteger(), nullable=False),
        sa.Column("g_per_kwh_sum", sa.Double(), nullable=False),
        sa.Column("readings", sa.Integer(), nullable=False),
        sa.Column("last_reading_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("region", "slot", name=op.f("pk_intensity_slots")),
    )
    op.create_table(
        "worker_throughput",
        sa.Column("gpu_class", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=500), nullable=False),
        sa.Column("full_epoch_s_per_example", sa.Double(), nullable=False),
        sa.Column("epochs", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("gpu_class", "model", name=op.f("pk_worker_throughput")),
    )


def downgrade() -> None:
    op.drop_table("worker_throughput")
    op.drop_table("intensity_slots")
