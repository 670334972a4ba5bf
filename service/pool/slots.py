"""Worker slots in the database: what the dispatcher may start jobs on.

A worker process keeps one `WorkerSlot` row fresh (`heartbeat`). A slot is free when its
heartbeat is recent and it holds no job. The dispatcher reserves a free slot for each job it
starts (`job_id`); the worker that takes the job from its class queue moves the reservation to
its own row (`take`), and gives it back when the job ends (`release`). So the number of
occupied slots always equals the number of dispatched or running jobs, whichever worker of the
class the broker handed the message to.

A worker of several devices (``greentrainer worker --gpus 0,1``) keeps one row per device, all
named by the process in ``worker``, and runs one job at a time: it is free only when all its
rows are (`free_slots`), the dispatcher reserves all of them for the one job it starts there,
and that job's message goes to the worker's own queue (`service.pool.queue.worker_route`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import String, bindparam, case, delete, exists, func, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, aliased

from service.models import WorkerSlot, utcnow


class FreeSlot(NamedTuple):
    name: str
    gpu_class: str
    worker: str  # the process whose slot it is (``name`` for a worker of one device)


def heartbeat(session: Session, name: str, *, gpu_class: str, hostname: str, pid: int,
              gpu_ids: str | None, now: datetime | None = None, worker: str | None = None) -> None:
    """Create or refresh the slot row ``name`` of process ``worker`` (default: ``name``, a
    worker of one device); the caller commits."""
    now = now or utcnow()
    updated = session.execute(update(WorkerSlot).where(WorkerSlot.name == name)
                              .values(heartbeat_at=now)).rowcount  # type: ignore[attr-defined]
    if not updated:
        session.add(WorkerSlot(name=name, gpu_class=gpu_class, hostname=hostname, pid=pid,
                               gpu_ids=gpu_ids, worker=worker or name, heartbeat_at=now,
                               started_at=now))
        session.flush()


def take(session: Session, worker: str, job_id: str) -> None:
    """Worker process ``worker`` now holds ``job_id`` on all its slots: drop any reservation of
    it on another worker's slot."""
    session.execute(update(WorkerSlot)
                    .where(WorkerSlot.job_id == job_id, WorkerSlot.worker != worker)
                    .values(job_id=None))
    session.execute(update(WorkerSlot).where(WorkerSlot.worker == worker).values(job_id=job_id))


def reserve(session: Session, job_by_slot: Mapping[str, str]) -> None:
    """Reserve each slot (by name) for its job, in one statement. The caller holds the slots'
    row locks (`free_slots` with ``lock``)."""
    if not job_by_slot:
        return
    if session.get_bind().dialect.name == "postgresql":
        # Two array parameters, however many slots: an executemany of 200 UPDATEs (one
        # pipeline) cost 4 times the client CPU and twice the time.
        session.execute(_RESERVE_PG, {"slots": list(job_by_slot), "jobs": list(job_by_slot.values())})
        return
    # NB: a single UPDATE ... SET job_id = CASE name WHEN ... END costs twice the CPU of this
    # executemany: its hundreds of bound values are walked for the cache key and compiled on
    # every pass.
    session.connection().execute(
        update(WorkerSlot).where(WorkerSlot.name == bindparam("slot")).values(job_id=bindparam("job")),
        [{"slot": name, "job": job_id} for name, job_id in job_by_slot.items()])


# Built once: UPDATE worker_slots SET job_id = booking.job FROM unnest(:slots, :jobs) AS
# booking(slot, job) WHERE worker_slots.name = booking.slot
_booking = (func.unnest(bindparam("slots", type_=ARRAY(String)), bindparam("jobs", type_=ARRAY(String)))
            .table_valued("slot", "job").render_derived(name="booking"))
_RESERVE_PG = (update(WorkerSlot).where(WorkerSlot.name == _booking.c.slot)
               .values(job_id=_booking.c.job).execution_options(synchronize_session=False))


def release(session: Session, job_id: str, *, worker: str | None = None) -> None:
    """Free every slot that holds ``job_id`` (the job ended, was cancelled or re-queued), or
    only worker process ``worker``'s slots (a worker that lost the job must not free its new
    holder's)."""
    query = update(WorkerSlot).where(WorkerSlot.job_id == job_id)
    if worker is not None:
        query = query.where(WorkerSlot.worker == worker)
    session.execute(query.values(job_id=None))


def unregister(session: Session, worker: str) -> None:
    """Delete every slot row of worker process ``worker``."""
    session.execute(delete(WorkerSlot).where(WorkerSlot.worker == worker))


_mate = aliased(WorkerSlot)  # another row of the same worker process


def free_slots(session: Session, *, now: datetime, stale_after_s: float,
               lock: bool) -> list[FreeSlot]:
    """The idle slots with a fresh heartbeat of the workers that are idle on every slot, locked
    ``FOR UPDATE SKIP LOCKED`` on Postgres when ``lock`` (a concurrent dispatcher skips them
    instead of reserving them twice; a worker of several slots is left out unless all its
    rows were locked here). Rows, not `WorkerSlot` objects: 0.6 instead of 1.5 ms of CPU for
    200 slots."""
    single = WorkerSlot.worker == WorkerSlot.name  # one device: no other row to look at
    busy_mate = exists().where(_mate.worker == WorkerSlot.worker, _mate.job_id.is_not(None))
    rows_of_worker = select(func.count()).where(_mate.worker == WorkerSlot.worker) \
        .scalar_subquery()
    query = (select(WorkerSlot.name, WorkerSlot.gpu_class, WorkerSlot.worker,
                    case((single, 1), else_=rows_of_worker).label("rows"))
             .where(WorkerSlot.job_id.is_(None),
                    WorkerSlot.heartbeat_at >= now - timedelta(seconds=stale_after_s),
                    or_(single, ~busy_mate))
             .order_by(WorkerSlot.name))
    if lock:
        query = query.with_for_update(of=WorkerSlot, skip_locked=True)
    found = session.execute(query).all()
    seen: dict[str, int] = {}
    for row in found:
        seen[row.worker] = seen.get(row.worker, 0) + 1
    return [FreeSlot(row.name, row.gpu_class, row.worker) for row in found
            if seen[row.worker] == row.rows]


def largest_workers(session: Session, *, now: datetime, stale_after_s: float) -> dict[str, int]:
    """The most slots one live worker of each GPU class has (busy or not): what a job of
    several GPUs of that class can ever get."""
    per_worker = (select(WorkerSlot.gpu_class, func.count().label("slots"))
                  .where(WorkerSlot.heartbeat_at >= now - timedelta(seconds=stale_after_s))
                  .group_by(WorkerSlot.gpu_class, WorkerSlot.worker).subquery())
    return {gpu_class: int(most) for gpu_class, most in session.execute(
        select(per_worker.c.gpu_class, func.max(per_worker.c.slots))
        .group_by(per_worker.c.gpu_class))}


def forget_dead(session: Session, *, now: datetime, dead_after_s: float) -> int:
    """Delete slots whose worker stopped sending heartbeats long ago; returns how many."""
    cutoff = now - timedelta(seconds=dead_after_s)
    return int(session.execute(delete(WorkerSlot).where(WorkerSlot.heartbeat_at < cutoff))
               .rowcount)  # type: ignore[attr-defined]
