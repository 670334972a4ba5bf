"""Two dispatchers at the same moment on Postgres never start a job twice nor book a slot twice
(row locks with SKIP LOCKED)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

import service.scheduler.dispatcher as dispatcher_module
from service.models import Job, WorkerSlot
from service.scheduler.dispatcher import dispatch_once
from tests.scheduler.test_dispatch import job, make_factory, postgres, slot, team

__all__ = ["postgres"]


@pytest.fixture
def pg_factory(postgres: Any) -> Iterator[sessionmaker[Session]]:
    yield make_factory(postgres.create())


def test_two_concurrent_dispatchers_start_each_job_once_on_distinct_slots(
        pg_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> None:
    real_order = dispatcher_module.order_dispatch

    def slow_order(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.2)  # hold the locks long enough for the other dispatcher to run into them
        return real_order(*args, **kwargs)

    monkeypatch.setattr(dispatcher_module, "order_dispatch", slow_order)
    with pg_factory.begin() as session:
        teams = [team(session) for _ in range(4)]
        for i in range(12):
            job(session, teams[i % 4], "any")
        for i in range(7):
            slot(session, "cpu" if i % 2 else "a100")
    sent: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def send(job_id: str, _gpu_class: str) -> None:
        with lock:
            sent.append(job_id)

    for _ in range(3):  # a few rounds: the loser of one round may win the next
        barrier = threading.Barrier(2)

        def one() -> None:
            barrier.wait()
            try:
                dispatch_once(pg_factory, send, stale_after_s=60, pickup_seconds=30)
            except Exception as exc:  # e.g. a compare-and-set lost to the other dispatcher
                errors.append(exc)

        threads = [threading.Thread(target=one) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []  # neither dispatcher ran into the other's rows
    assert len(sent) == 7 and len(set(sent)) == 7
    with pg_factory() as session:
        running = set(session.scalars(select(Job.id).where(Job.status == "running")))
        held = Counter(j for j in session.scalars(select(WorkerSlot.job_id)) if j)
    assert running == set(sent)
    assert set(held) == running and max(held.values()) == 1
