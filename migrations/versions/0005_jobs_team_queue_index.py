"""The dispatcher's queue order per team: (status, team_id, created_at, id) replaces
(status, created_at, id).

A dispatch pass reads the first waiting jobs of each team (`WHERE status = 'queued' AND team_id
= ? ORDER BY created_at, id LIMIT ?`, once per team), so that one team's long queue of old jobs
cannot hide another team's jobs; it no longer reads the oldest jobs of all teams. The running
jobs per team (fair share, quotas) use the same index; queries on the status alone use its
prefix.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_jobs_status_team_id_created_at_id", "jobs",
                    ["status", "team_id", "created_at", "id"], unique=False)
    op.drop_index("ix_jobs_status_created_at_id", table_name="jobs")


def downgrade() -> None:
    op.create_index("ix_jobs_status_created_at_id", "jobs", ["status", "created_at", "id"],
                    unique=False)
    op.drop_index("ix_jobs_status_team_id_created_at_id", table_name="jobs")
