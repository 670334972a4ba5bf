"""The database-backed dispatcher: starts queued jobs on free worker slots, fairly.

One pass (`dispatch_once`), in one transaction:
1. lock the free slots and the queued jobs (``FOR UPDATE SKIP LOCKED`` on Postgres: a second
   dispatcher running at the same moment skips what this one holds, so no slot and no job is
   handed out twice; on SQLite writes are serialised and one dispatcher runs);
2. order the jobs with the pure `order_dispatch` (fair share by CO2 used this month relative to
   the team's share, FIFO inside a team), enforcing each team's `max_concurrent_jobs` and
   skipping teams past their `monthly_co2_budget_kg`;
3. reserve one slot per started job and make the job `running` with a pickup deadline, in
   three statements whatever the number of starts (`transition_many`, `slots.reserve`).
Only after the commit are the tasks sent to the broker (`send(job_id, gpu_class)`); a send that
fails leaves a reserved slot that the reconciler frees when the pickup deadline passes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.db import session_scope
from service.jobs import transition_many
from service.models import Job, Team, WorkerSlot, utcnow
from service.quotas import co2_kg_this_month
from service.scheduler import slots
from service.scheduler.fairness import QueuedJob, TeamUsage, order_dispatch
from service.states import JobStatus

log = logging.getLogger("service.scheduler.dispatcher")

ANY_CLASS = "any"
MAX_JOBS_PER_PASS = 500
DISPATCH_COLUMNS = (Job.id, Job.team_id, Job.status, Job.gpu_class, Job.created_at)

Send = Callable[[str, str], None]


@dataclass(frozen=True)
class Started:
    job_id: str
    team_id: str
    gpu_class: str
    slot: str


def _teams(session: Session, team_ids: set[str], now: datetime) -> tuple[dict[str, TeamUsage],
                                                                      set[str]]:
    """Fair-share records per team, and the teams past their monthly CO2 budget."""
    co2 = co2_kg_this_month(session, team_ids, now=now)
    running = dict(session.execute(
        select(Job.team_id, func.count())
        .where(Job.team_id.in_(team_ids), Job.status == JobStatus.RUNNING.value)
        .group_by(Job.team_id)).all())
    records, over_budget = {}, set()
    for team in session.scalars(select(Team).where(Team.id.in_(team_ids))):
        used = co2[team.id]
        if team.monthly_co2_budget_kg is not None and used >= team.monthly_co2_budget_kg:
            over_budget.add(team.id)
        records[team.id] = TeamUsage(team.id, recent_usage=used, running_gpus=running.get(team.id, 0),
                                     quota_gpus=team.max_concurrent_jobs)
    return records, over_budget


def _fits(job_classes: set[str], slot_classes: set[str]) -> dict[str, list[str]]:
    """A job asking for class c runs only on c; `any` runs on every class (sorted)."""
    fits = {c: [c] for c in job_classes | slot_classes}
    fits[ANY_CLASS] = sorted(slot_classes)
    return fits


def dispatch_once(factory: sessionmaker[Session], send: Send, *, stale_after_s: float,
                  pickup_seconds: float, now: datetime | None = None,
                  planned_only: bool = False) -> list[Started]:
    """Start what fits now; returns the started jobs (tasks already sent). With
    ``planned_only``, deadline jobs the green-window planner has not seen yet are left for it
    (the API's fast path after a submission; the scheduler loop plans, then dispatches)."""
    now = now or utcnow()
    started: list[Started] = []
    with session_scope(factory) as session:
        free = slots.free_slots(session, now=now, stale_after_s=stale_after_s, lock=True)
        if not free:
            return []
        waiting = Job.status == JobStatus.QUEUED.value
        if planned_only:
            waiting = waiting & (Job.deadline.is_(None) | Job.planned_start_at.is_not(None))
        # Rows of the columns the pass reads, not Job objects: a third of the CPU for 500 jobs.
        jobs = session.execute(
            select(*DISPATCH_COLUMNS).where(waiting)
            .order_by(Job.created_at, Job.id).limit(MAX_JOBS_PER_PASS)
            .with_for_update(skip_locked=True)).all()
        if not jobs:
            return []
        teams, over_budget = _teams(session, {j.team_id for j in jobs}, now)
        candidates = [QueuedJob(j.id, j.team_id, j.gpu_class, j.created_at) for j in jobs
                      if j.team_id not in over_budget]
        by_class: dict[str, list[WorkerSlot]] = {}
        for slot in free:
            by_class.setdefault(slot.gpu_class, []).append(slot)
        order = order_dispatch(candidates, {c: len(s) for c, s in by_class.items()}, teams,
                               _fits({j.gpu_class for j in jobs}, set(by_class)))
        if not order:
            return []
        rows = {j.id: j for j in jobs}
        for item in order:
            slot = by_class[item.gpu_class].pop()
            started.append(Started(item.job.job_id, item.job.team, item.gpu_class, slot.name))
        # Three statements whatever the number of starts: the jobs (status compare-and-set and
        # pickup deadline), their events, the slots.
        transition_many(session, [rows[s.job_id] for s in started], JobStatus.RUNNING,
                        messages=[f"dispatched to a {s.gpu_class} worker" for s in started],
                        values={"lease_owner": None,
                                "lease_expires_at": now + timedelta(seconds=pickup_seconds)})
        slots.reserve(session, {s.slot: s.job_id for s in started})
    for begun in started:
        try:
            send(begun.job_id, begun.gpu_class)
        except Exception:  # broker down: the reconciler re-queues it after the pickup deadline
            log.exception("sending job %s to the %s queue failed", begun.job_id, begun.gpu_class)
    return started


def pool_summary(session: Session, *, now: datetime, stale_after_s: float) -> dict[str, int]:
    """Live slots per GPU class (for logs and the CLI)."""
    rows = session.execute(
        select(WorkerSlot.gpu_class, func.count())
        .where(WorkerSlot.heartbeat_at >= now - timedelta(seconds=stale_after_s))
        .group_by(WorkerSlot.gpu_class)).all()
    return {gpu_class: int(count) for gpu_class, count in rows}
