"""Running totals of each team's CO2 per calendar month (UTC), filled from the recorded epochs.

The dispatcher checks monthly CO2 budgets and orders teams by CO2 used this month on every
pass; summing the month's epochs grew with the pool's history. From now on every inserted epoch
adds to its team's row (`service.models.TeamMonthCo2`); this migration adds up the epochs
already recorded.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 16:00:00
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _month(when: datetime | str) -> str:
    if isinstance(when, str):  # SQLite returns the stored text
        when = datetime.fromisoformat(when)
    if when.tzinfo is None:  # stored as UTC (service.models.UTCDateTime)
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m")


def upgrade() -> None:
    table = op.create_table(
        "team_month_co2",
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("kg_co2", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], name=op.f("fk_team_month_co2_team_id_teams"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("team_id", "month", name=op.f("pk_team_month_co2")),
    )
    totals: dict[tuple[str, str], float] = defaultdict(float)
    rows = op.get_bind().execute(sa.text(
        "SELECT jobs.team_id, job_epochs.created_at, job_epochs.kg_co2 FROM job_epochs "
        "JOIN jobs ON jobs.id = job_epochs.job_id WHERE job_epochs.kg_co2 IS NOT NULL"))
    for team_id, created_at, kg_co2 in rows:
        totals[team_id, _month(created_at)] += kg_co2
    if totals:
        op.bulk_insert(table, [{"team_id": team, "month": month, "kg_co2": kg}
                               for (team, month), kg in totals.items()])


def downgrade() -> None:
    op.drop_table("team_month_co2")
