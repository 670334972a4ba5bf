"""Jobs on several devices: a job's `gpus` (how many devices of one worker it trains on, with
data-parallel training), and each worker slot's `worker` (the process its row belongs to: a
worker of several devices keeps one row per device, all reserved together for one job).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 16:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gpus", sa.Integer(), server_default="1", nullable=False))
    # Slot rows are rewritten by their workers every heartbeat: each existing row is a worker of
    # one device, whose process name is the row's name.
    with op.batch_alter_table("worker_slots", schema=None) as batch_op:
        batch_op.add_column(sa.Column("worker", sa.String(length=255), nullable=True))
    op.execute("UPDATE worker_slots SET worker = name")
    with op.batch_alter_table("worker_slots", schema=None) as batch_op:
        batch_op.alter_column("worker", existing_type=sa.String(length=255), nullable=False)
        batch_op.create_index("ix_worker_slots_worker", ["worker"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("worker_slots", schema=None) as batch_op:
        batch_op.drop_index("ix_worker_slots_worker")
        batch_op.drop_column("worker")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("gpus")
