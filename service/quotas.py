"""A team's use of its quotas: active jobs (against ``max_concurrent_jobs``) and CO2 emitted this
calendar month, UTC (against ``monthly_co2_budget_kg``). The API reports it; the scheduler
enforces the quotas with the same numbers."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.models import Job, TeamMonthCo2, month_key
from service.states import ACTIVE


@dataclass(frozen=True)
class TeamUsage:
    active_jobs: int = 0
    co2_kg_this_month: float = 0.0


def usage_by_team(session: Session, team_ids: Iterable[str], *,
                  now: datetime | None = None) -> dict[str, TeamUsage]:
    """Usage of each team in ``team_ids`` (two grouped queries, whatever the number of teams)."""
    ids = list(team_ids)
    active = dict(session.execute(
        select(Job.team_id, func.count()).where(
            Job.team_id.in_(ids), Job.status.in_([s.value for s in ACTIVE]))
        .group_by(Job.team_id)).all())
    co2 = co2_kg_this_month(session, ids, now=now)
    return {team_id: TeamUsage(active_jobs=int(active.get(team_id, 0)),
                               co2_kg_this_month=co2[team_id])
            for team_id in ids}


def co2_kg_this_month(session: Session, team_ids: Iterable[str], *,
                      now: datetime | None = None) -> dict[str, float]:
    """kg CO2 of each team's epochs this calendar month (UTC), from the running totals
    (`TeamMonthCo2`: one row per team, however many epochs); 0.0 for a team with none. The
    scheduler's monthly budget check uses only this part of the usage."""
    ids = list(team_ids)
    co2 = dict(session.execute(
        select(TeamMonthCo2.team_id, TeamMonthCo2.kg_co2)
        .where(TeamMonthCo2.team_id.in_(ids),
               TeamMonthCo2.month == month_key(now or datetime.now(UTC)))).all())
    return {team_id: float(co2.get(team_id) or 0.0) for team_id in ids}
