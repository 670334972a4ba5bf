"""Pause and resume at epoch boundaries: the `paused` status, and on each job the pause asked
for (its reason: the team's or the carbon plan's), when, and its planned restart. And deleted
data sets (`datasets.deleted_at`: the row stays for the finished jobs that name it).

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-03 13:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BEFORE = ("validating", "queued", "waiting_for_green", "running", "succeeded", "failed",
           "cancelled")
_AFTER = (*_BEFORE[:4], "paused", *_BEFORE[4:])


def _statuses(values: Sequence[str]) -> str:
    return "status IN (" + ", ".join(f"'{value}'" for value in values) + ")"


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pause_reason", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("pause_requested_at", sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column("resume_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("pause_note", sa.Text(), nullable=True))
        batch_op.drop_constraint(op.f("ck_jobs_status"), type_="check")
        batch_op.create_check_constraint("status", _statuses(_AFTER))
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_column("deleted_at")
    # A paused job goes back to the queue: the older schema has no `paused`.
    op.execute("UPDATE jobs SET status = 'queued' WHERE status = 'paused'")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_jobs_status"), type_="check")
        batch_op.create_check_constraint("status", _statuses(_BEFORE))
        batch_op.drop_column("pause_note")
        batch_op.drop_column("resume_at")
        batch_op.drop_column("pause_requested_at")
        batch_op.drop_column("pause_reason")
