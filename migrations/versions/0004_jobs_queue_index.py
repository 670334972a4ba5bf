"""The dispatcher's queue order as an index: (status, created_at, id) replaces (status).

A dispatch pass reads the oldest queued jobs (`WHERE status = 'queued' ORDER BY created_at, id
LIMIT 500`); with the status-only index Postgres sorted every queued row first. Queries on the
status alone use the new index's prefix.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_jobs_status_created_at_id", "jobs", ["status", "created_at", "id"], unique=False)
    op.drop_index("ix_jobs_status", table_name="jobs")


def downgrade() -> None:
    op.create_index("ix_jobs_status", "jobs", ["status"], unique=False)
    op.drop_index("ix_jobs_status_created_at_id", table_name="jobs")
