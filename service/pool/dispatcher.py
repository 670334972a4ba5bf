"""The database-backed dispatcher: starts queued jobs on free worker slots, fairly.

One pass (`dispatch_once`), in one transaction:
1. lock the free slots (``FOR UPDATE SKIP LOCKED`` on Postgres: a second dispatcher running at
   the same moment skips them, so no slot is handed out twice; on SQLite writes are serialised)
   and read, without locks, the first waiting jobs of every team (`_queue_heads`);
2. order the jobs with the pure `order_dispatch` (fair share by CO2 used this month relative to
   the team's share, FIFO inside a team), enforcing each team's `max_concurrent_jobs` and
   skipping teams past their `monthly_co2_budget_kg`;
3. start them (`transition_many` with ``skip_changed``): lock those still queued, skipping any
   row another transaction holds, then one compare-and-set UPDATE and one INSERT of the events,
   so no job starts twice and no dispatcher waits for another. When some were taken, or a team
   had its whole share of the read started, read and order again for the slots left (at most
   `MAX_ROUNDS` orderings); then reserve the slots of the started jobs in one statement
   (`slots.reserve`): a job of ``gpus`` N gets one worker with N free slots or more (never
   slots of two workers), all its slots (a worker runs one job at a time). Queue heads asking
   for more GPUs than any live worker of their class has are told so in their events
   (`too_big`). Team quotas (``max_concurrent_jobs``) count GPUs: a running job of N counts N.
Only after the commit are the tasks sent to the broker (`send(job_id, route)`: the class of a
worker of one slot, else the worker's own queue, `service.pool.queue.worker_route`); a send that
fails leaves a reserved slot that the reconciler frees when the pickup deadline passes.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, FromClause, Row, func, literal, select, true
from sqlalchemy.orm import Session, sessionmaker

from service.db import session_scope
from service.jobs import transition_many
from service.models import Job, Team, WorkerSlot, utcnow
from service.pool import slots
from service.pool.fairness import Dispatch, QueuedJob, TeamUsage, order_dispatch
from service.pool.queue import worker_route
from service.pool.too_big import explain_too_big
from service.quotas import co2_kg_this_month
from service.states import JobStatus

log = logging.getLogger("service.pool.dispatcher")

ANY_CLASS = "any"
MAX_JOBS_PER_PASS = 500  # queue heads a pass orders: every team's first, then every team's second...
MAX_ROUNDS = 3  # orderings per pass, when jobs were taken concurrently or a team had more
DISPATCH_COLUMNS = (Job.id, Job.team_id, Job.status, Job.gpu_class, Job.gpus, Job.created_at)

Send = Callable[[str, str], None]


@dataclass(frozen=True)
class Started:
    job_id: str
    team_id: str
    gpu_class: str
    slots: tuple[str, ...]  # one worker's: its every slot
    route: str  # what `send` is given: the class, or the worker's own queue

    @property
    def slot(self) -> str:
        """The slots' names, for the log."""
        return ", ".join(self.slots)


Workers = dict[str, list[list[slots.FreeSlot]]]  # class -> the free workers -> their slots


def _queue_heads(session: Session, waiting: ColumnElement[bool],
                 free_slots: int) -> Sequence[Row[Any]]:
    """The first waiting jobs of each team in submission order (first in, first out), as many
    as the team could start now (the free slots, and its room under ``max_concurrent_jobs``)
    and at most its ``share`` of `MAX_JOBS_PER_PASS`; each team's first before any team's
    second. So a team with a long queue of old jobs cannot hide another team's newer ones from
    the fair-share order. Each row carries its team's quota, CO2 budget, running jobs and
    share. No row locks: the start is a compare-and-set (`transition_many`)."""
    running = (select(func.coalesce(func.sum(Job.gpus), 0).label("running"))  # GPUs, not jobs
               .where(Job.status == JobStatus.RUNNING.value, Job.team_id == Team.id))
    place = func.row_number().over(partition_by=Job.team_id, order_by=(Job.created_at, Job.id))
    heads: FromClause
    if session.get_bind().dialect.name == "postgresql":
        # The teams with room and a waiting job (a probe of ix_jobs_status_team_id_created_at_id
        # each for the count and for the job), then one index scan per team, LIMIT what the
        # team may start and its share: about MAX_JOBS_PER_PASS rows are read however long
        # the queue (reading each team's room, 200 rows x 20 teams, took 6 ms of a 40 ms pass).
        # NB: the team's first waiting job (ORDER BY as the index, LIMIT 1), not EXISTS: with
        # few queued jobs in its statistics the planner joined an EXISTS by walking the queued
        # jobs for each team (40 ms at 110,000 queued), and a bare LIMIT 1 by a sequential
        # scan that skips the jobs already started (1-1.5 ms, growing as the queue drains).
        counted = running.lateral("counted")
        waits = (select(Job.id).where(waiting, Job.team_id == Team.id)
                 .order_by(Job.created_at, Job.id).limit(1).lateral("waits"))
        open_teams = (select(Team.id, Team.max_concurrent_jobs, Team.monthly_co2_budget_kg,
                             counted.c.running, func.count().over().label("open_teams"))
                      .select_from(Team).join(counted, true()).join(waits, true())
                      .where(Team.max_concurrent_jobs > counted.c.running)
                      .subquery("open_teams"))
        share = (MAX_JOBS_PER_PASS + open_teams.c.open_teams - 1) // open_teams.c.open_teams
        heads = (select(*DISPATCH_COLUMNS, place.label("place"))
                 .where(waiting, Job.team_id == open_teams.c.id).order_by(Job.created_at, Job.id)
                 .limit(func.least(free_slots, open_teams.c.max_concurrent_jobs - open_teams.c.running,
                                   share))
                 .lateral("heads"))
        query = (select(heads, open_teams.c.max_concurrent_jobs, open_teams.c.monthly_co2_budget_kg,
                        open_teams.c.running, share.label("share"))
                 .select_from(open_teams).join(heads, true()))
    else:  # SQLite has no LATERAL: a window over the whole queue (a development database)
        heads = select(*DISPATCH_COLUMNS, place.label("place")).where(waiting).subquery("heads")
        running_jobs = running.scalar_subquery()
        query = (select(heads, Team.max_concurrent_jobs, Team.monthly_co2_budget_kg,
                        running_jobs.label("running"), literal(free_slots).label("share"))
                 .join(Team, Team.id == heads.c.team_id)
                 .where(heads.c.place <= func.min(free_slots, Team.max_concurrent_jobs - running_jobs)))
    return session.execute(query.order_by(heads.c.place, heads.c.created_at, heads.c.id)
                           .limit(MAX_JOBS_PER_PASS)).all()


def _teams(session: Session, heads: Sequence[Row[Any]], now: datetime,
           charged: Mapping[str, float]) -> tuple[dict[str, TeamUsage], set[str]]:
    """Fair-share records of the teams of ``heads`` (``charged``: the usage of the jobs this pass
    started in earlier rounds), and the teams past their monthly CO2 budget."""
    teams = {row.team_id: row for row in heads}
    co2 = co2_kg_this_month(session, teams, now=now)
    records, over_budget = {}, set()
    for team_id, row in teams.items():
        if row.monthly_co2_budget_kg is not None and co2[team_id] >= row.monthly_co2_budget_kg:
            over_budget.add(team_id)
        records[team_id] = TeamUsage(team_id, recent_usage=co2[team_id] + charged.get(team_id, 0.0),
                                     running_gpus=row.running, quota_gpus=row.max_concurrent_jobs)
    return records, over_budget


def _fits(job_classes: set[str], slot_classes: set[str]) -> dict[str, list[str]]:
    """A job asking for class c runs only on c; `any` runs on every class (sorted)."""
    fits = {c: [c] for c in job_classes | slot_classes}
    fits[ANY_CLASS] = sorted(slot_classes)
    return fits


def _order(session: Session, waiting: ColumnElement[bool], free: Workers,
           now: datetime, charged: Mapping[str, float]) -> tuple[list[Dispatch],
                                                                 dict[str, Row[Any]], bool]:
    """The fair-share order of the queue heads for the ``free`` workers, the heads it chose
    from by id, and whether a team cut to its share had every head chosen (it may have more
    jobs that could start on slots left over)."""
    free_slots = sum(len(worker) for workers in free.values() for worker in workers)
    heads = _queue_heads(session, waiting, free_slots)
    if not heads:
        return [], {}, False
    teams, over_budget = _teams(session, heads, now, charged)
    rows = {j.id: j for j in heads if j.team_id not in over_budget}
    candidates = [QueuedJob(j.id, j.team_id, j.gpu_class, j.created_at, gpus=j.gpus)
                  for j in rows.values()]
    sizes = {c: [len(worker) for worker in workers] for c, workers in free.items()}
    order = order_dispatch(candidates, {c: sum(n) for c, n in sizes.items()}, teams,
                           _fits({j.gpu_class for j in heads}, set(free)), workers=sizes)
    read, chosen = Counter(j.team_id for j in rows.values()), Counter(i.job.team for i in order)
    cut = {j.team_id for j in rows.values()
           if read[j.team_id] == j.share < min(free_slots, j.max_concurrent_jobs - j.running)}
    return order, rows, any(chosen[team] == read[team] for team in cut)


def dispatch_once(factory: sessionmaker[Session], send: Send, *, stale_after_s: float,
                  pickup_seconds: float, now: datetime | None = None,
                  planned_only: bool = False) -> list[Started]:
    """Start what fits now; returns the started jobs (tasks already sent). With
    ``planned_only``, deadline jobs the green-window planner has not seen yet are left for it
    (the API's fast path after a submission; the scheduler loop plans, then dispatches)."""
    now = now or utcnow()
    started: list[Started] = []
    with session_scope(factory) as session:
        free = _free_workers(slots.free_slots(session, now=now, stale_after_s=stale_after_s,
                                              lock=True))
        if not free:
            return []
        waiting = (Job.status == JobStatus.QUEUED.value) & \
            Job.gpu_class.in_([ANY_CLASS, *free])  # only jobs a free slot can run
        if planned_only:
            waiting = waiting & (Job.deadline.is_(None) | Job.planned_start_at.is_not(None))
        lost: set[str] = set()  # chosen, but changed or held by another transaction
        charged: dict[str, float] = defaultdict(float)  # usage of the starts of earlier rounds
        heads: dict[str, Row[Any]] = {}
        for _ in range(MAX_ROUNDS):
            order, rows, more = _order(session, waiting & Job.id.not_in(lost) if lost else waiting,
                                       free, now, charged)
            heads.update(rows)
            if not order:
                break
            # Lock, then one UPDATE (status, pickup deadline) and one INSERT of the events.
            won = set(transition_many(
                session, [rows[item.job.job_id] for item in order], JobStatus.RUNNING,
                messages=[f"dispatched to a {item.gpu_class} worker" for item in order],
                values={"lease_owner": None,
                        "lease_expires_at": now + timedelta(seconds=pickup_seconds)},
                skip_changed=True))
            taken: dict[str, set[int]] = defaultdict(set)
            for item in order:
                if item.job.job_id not in won:
                    lost.add(item.job.job_id)
                    continue
                charged[item.job.team] += item.job.expected_usage
                assert item.worker is not None  # order_dispatch was given the workers
                taken[item.gpu_class].add(item.worker)
                worker = free[item.gpu_class][item.worker]
                started.append(Started(
                    item.job.job_id, item.job.team, item.gpu_class,
                    tuple(s.name for s in worker), item.gpu_class if len(worker) == 1 else
                    worker_route(item.gpu_class, worker[0].worker)))
            free = {c: [w for i, w in enumerate(workers) if i not in taken[c]]
                    for c, workers in free.items()}
            if not any(free.values()) or (len(won) == len(order) and not more):
                break
            log.info("ordering again for %d free slots: %d of %d chosen jobs were taken "
                     "concurrently", sum(len(w) for ws in free.values() for w in ws),
                     len(order) - len(won),
                     len(order))
        slots.reserve(session, {name: s.job_id for s in started for name in s.slots})
        begun_ids = {s.job_id for s in started}
        explain_too_big(session, [row for job_id, row in heads.items() if job_id not in begun_ids],
                        now=now, stale_after_s=stale_after_s, any_class=ANY_CLASS)
    for begun in started:
        try:
            send(begun.job_id, begun.route)
        except Exception:  # broker down: the reconciler re-queues it after the pickup deadline
            log.exception("sending job %s to the %s queue failed", begun.job_id, begun.route)
    return started


def _free_workers(free: Sequence[slots.FreeSlot]) -> Workers:
    """The free slots grouped by class, then by worker process (in slot name order)."""
    workers: dict[str, dict[str, list[slots.FreeSlot]]] = {}
    for slot in free:
        workers.setdefault(slot.gpu_class, {}).setdefault(slot.worker, []).append(slot)
    return {c: list(by_worker.values()) for c, by_worker in workers.items()}


def pool_summary(session: Session, *, now: datetime, stale_after_s: float) -> dict[str, int]:
    """Live slots per GPU class (for logs and the CLI)."""
    rows = session.execute(
        select(WorkerSlot.gpu_class, func.count())
        .where(WorkerSlot.heartbeat_at >= now - timedelta(seconds=stale_after_s))
        .group_by(WorkerSlot.gpu_class)).all()
    return {gpu_class: int(count) for gpu_class, count in rows}
