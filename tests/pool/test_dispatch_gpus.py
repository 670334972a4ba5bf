"""Jobs of several GPUs in the database-backed dispatcher (SQLite and Postgres): a job of N gets
one worker with N free slots, all of that worker's slots at once, never slots of two workers;
team quotas count GPUs; a job larger than every live worker is told so in its events."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.models import JobEvent, WorkerSlot
from service.pool import slots
from service.pool.queue import worker_route
from service.pool.reconciler import reconcile
from service.pool.too_big import TOO_BIG_EVENT
from tests.pool.test_dispatch import factory, job, run, slot, status, team  # noqa: F401
from tests.service.conftest import postgres  # noqa: F401  (the shared Postgres fixture)


def worker(session: Session, gpu_class: str, devices: int, hostname: str = "h") -> str:
    """A worker process of ``devices`` slots (`greentrainer worker --gpus 0,1,...`)."""
    name = f"w-{secrets.token_hex(4)}"
    for device in range(devices):
        slots.heartbeat(session, f"{name}#{device}", gpu_class=gpu_class, hostname=hostname,
                        pid=1, gpu_ids=str(device), worker=name)
    return name


def held(factory: sessionmaker[Session], job_id: str) -> list[tuple[str, str]]:
    with factory() as session:
        return sorted(session.execute(select(WorkerSlot.worker, WorkerSlot.hostname)
                                      .where(WorkerSlot.job_id == job_id)).tuples())


def too_big_events(factory: sessionmaker[Session], job_id: str) -> list[JobEvent]:
    with factory() as session:
        return list(session.scalars(select(JobEvent).where(JobEvent.job_id == job_id,
                                                           JobEvent.type == TOO_BIG_EVENT)))


def test_a_two_gpu_job_gets_both_slots_of_one_worker_and_its_queue(
        factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        t = team(session)
        pair = job(session, t, "a100", gpus=2)
        single = job(session, t, "a100")
        slot(session, "a100")  # a worker of one device
        two = worker(session, "a100", 2, hostname="big")
    sent: list[tuple[str, str]] = []
    assert sorted(run(factory, sent)) == sorted([pair, single])
    assert held(factory, pair) == [(two, "big"), (two, "big")]
    # The one-GPU job took the one-device worker (best fit), not half of the pair's.
    assert len(held(factory, single)) == 1 and held(factory, single)[0][0] != two
    assert dict((j, r) for j, r in sent) == {pair: worker_route("a100", two), single: "a100"}


def test_a_job_is_never_split_across_workers_or_machines(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        t = team(session)
        pair = job(session, t, "a100", gpus=2)
        for hostname in ("h1", "h1", "h2"):  # three free slots, each its own worker
            worker(session, "a100", 1, hostname=hostname)
    assert run(factory) == []
    assert status(factory, pair) == "queued" and held(factory, pair) == []
    [event] = too_big_events(factory, pair)  # told why it waits
    assert "asks for 2 GPUs" in event.message and "has 1" in event.message
    assert event.data == {"gpus": 2, "largest_worker_gpus": 1}
    assert run(factory) == [] and len(too_big_events(factory, pair)) == 1  # once, not per pass


def test_a_worker_busy_on_one_slot_is_not_free_on_the_other(
        factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        t = team(session)
        running = job(session, t, "a100", status="running")
        waiting = job(session, t, "a100")
        two = worker(session, "a100", 2)
        slots.take(session, two, running)  # the worker holds the job on both its slots
    with factory() as session:
        assert session.scalars(select(WorkerSlot.job_id).where(WorkerSlot.worker == two)) \
            .all() == [running, running]
    assert run(factory) == [] and status(factory, waiting) == "queued"
    with factory.begin() as session:
        slots.release(session, running, worker=two)
    assert run(factory) == [waiting]
    assert len(held(factory, waiting)) == 2  # the whole worker again


def test_a_team_quota_counts_gpus(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        t = team(session, max_jobs=2)  # at most 2 GPUs at once
        job(session, t, "a100", gpus=2, status="running")
        later = job(session, t, "a100")
        slot(session, "a100")
        other = team(session, max_jobs=2)
        too_many = job(session, other, "a100", gpus=3)
        worker(session, "a100", 4)
    assert run(factory) == []  # 2 + 1 > 2; and 3 > 2 for the other team
    assert status(factory, later) == "queued" and status(factory, too_many) == "queued"
    assert too_big_events(factory, too_many) == []  # a worker can hold it: the quota waits


def test_the_reconciler_frees_every_slot_of_a_job_that_ended(
        factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        t = team(session)
        gone = job(session, t, "a100", gpus=2, status="cancelled")  # its worker was killed
        two = worker(session, "a100", 2)
        slots.take(session, two, gone)
    assert len(held(factory, gone)) == 2
    assert reconcile(factory, max_attempts=3, stale_after_s=10.0).freed_slots >= 1
    assert held(factory, gone) == []
