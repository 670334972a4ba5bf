"""Worker slots: one row per worker process (GPU class, heartbeat, the job it holds).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 07:15:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "worker_slots",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("gpu_class", sa.String(length=32), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("gpu_ids", sa.String(length=64), nullable=True),
        sa.Column("job_id", sa.String(length=40), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"],
                                name=op.f("fk_worker_slots_job_id_jobs"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_worker_slots")),
    )
    op.create_index("ix_worker_slots_gpu_class", "worker_slots", ["gpu_class"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_worker_slots_gpu_class", table_name="worker_slots")
    op.drop_table("worker_slots")
