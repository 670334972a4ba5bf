"""Two dispatchers at the same moment on Postgres never start a job twice nor book a slot twice
(row locks with SKIP LOCKED), with a few slots and with 200 (the batched writes)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

import service.pool.dispatcher as dispatcher_module
from service.models import Job, JobEvent, WorkerSlot
from service.pool.dispatcher import dispatch_once
from tests.pool.test_dispatch import job, make_factory, postgres, slot, team

__all__ = ["postgres"]


@pytest.fixture
def pg_factory(postgres: Any) -> Iterator[sessionmaker[Session]]:
    yield make_factory(postgres.create())


@pytest.fixture
def slow_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each dispatcher holds its row locks long enough for the other one to run into them."""
    real_order = dispatcher_module.order_dispatch

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.2)
        return real_order(*args, **kwargs)

    monkeypatch.setattr(dispatcher_module, "order_dispatch", slow)


class Race:
    """Two `dispatch_once` at the same moment, round after round; records what they sent."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory
        self.sent: list[str] = []
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()

    def send(self, job_id: str, _gpu_class: str) -> None:
        with self.lock:
            self.sent.append(job_id)

    def round(self) -> None:
        barrier = threading.Barrier(2)

        def one() -> None:
            barrier.wait()
            try:
                dispatch_once(self.factory, self.send, stale_after_s=60, pickup_seconds=30)
            except Exception as exc:  # e.g. a compare-and-set lost to the other dispatcher
                self.errors.append(exc)

        threads = [threading.Thread(target=one) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def held(self) -> Counter[str]:
        with self.factory() as session:
            return Counter(j for j in session.scalars(select(WorkerSlot.job_id)) if j)


@pytest.mark.usefixtures("slow_order")
def test_two_concurrent_dispatchers_start_each_job_once_on_distinct_slots(
        pg_factory: sessionmaker[Session]) -> None:
    with pg_factory.begin() as session:
        teams = [team(session) for _ in range(4)]
        for i in range(12):
            job(session, teams[i % 4], "any")
        for i in range(7):
            slot(session, "cpu" if i % 2 else "a100")
    race = Race(pg_factory)
    for _ in range(3):  # a few rounds: the loser of one round may win the next
        race.round()
    assert race.errors == []  # neither dispatcher ran into the other's rows
    assert len(race.sent) == 7 and len(set(race.sent)) == 7
    with pg_factory() as session:
        running = set(session.scalars(select(Job.id).where(Job.status == "running")))
    held = race.held()
    assert running == set(race.sent)
    assert set(held) == running and max(held.values()) == 1


@pytest.mark.usefixtures("slow_order")
def test_concurrent_dispatchers_on_200_slots_never_start_a_job_twice(pg_factory: sessionmaker[Session]) -> None:
    with pg_factory.begin() as session:
        for t in [team(session, max_jobs=1000) for _ in range(4)]:
            for _ in range(75):
                job(session, t, "any")
        for i in range(200):
            slot(session, "cpu" if i % 2 else "a100")
    race = Race(pg_factory)
    for _ in range(2):  # 200 start; the workers finish and hand the slots back; the other 100 start
        race.round()
        held = race.held()
        assert set(held) == set(race.sent[-len(held):]) and max(held.values()) == 1
        with pg_factory.begin() as session:
            session.execute(update(WorkerSlot).values(job_id=None))
    assert race.errors == []
    assert len(race.sent) == 300 and len(set(race.sent)) == 300
    with pg_factory() as session:
        assert set(session.scalars(select(Job.id).where(Job.status == "running"))) == set(race.sent)
        events = Counter(session.scalars(select(JobEvent.job_id).where(JobEvent.type == "status")))
    assert set(events) == set(race.sent) and set(events.values()) == {1}  # one start event each


def test_a_job_another_transaction_holds_is_skipped_without_waiting(pg_factory: sessionmaker[Session]) -> None:
    """The pass reads the queue without locks and claims its choices with SKIP LOCKED: a job
    whose row another transaction holds (another dispatcher's start, a cancel in flight) is
    passed over at once, and the slot goes to the next job in a second ordering."""
    with pg_factory.begin() as session:
        t = team(session)
        held, nxt = job(session, t, "any"), job(session, t, "any")
        slot(session, "cpu")
    holder = pg_factory()
    holder.execute(select(Job.id).where(Job.id == held).with_for_update())  # held until rollback
    race = Race(pg_factory)
    dispatcher = threading.Thread(target=lambda: dispatch_once(pg_factory, race.send, stale_after_s=60,
                                                               pickup_seconds=30))
    dispatcher.start()
    dispatcher.join(timeout=5)
    waited = dispatcher.is_alive()  # a pass that waits for the lock ends only after the rollback
    holder.rollback()
    holder.close()
    dispatcher.join()
    assert not waited and race.sent == [nxt]
    with pg_factory() as session:
        assert session.get_one(Job, held).status == "queued"
