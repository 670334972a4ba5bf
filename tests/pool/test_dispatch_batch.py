"""A dispatch pass writes its starts in bulk (`transition_many`, `slots.reserve`): hundreds of
starts in one pass keep every rule of the one-by-one path, on SQLite and Postgres. (Two
dispatchers racing over 200 slots: test_dispatch_concurrency.py.)"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, sessionmaker

import service.pool.dispatcher as dispatcher_module
from service.errors import IllegalTransition
from service.jobs import transition_many
from service.models import Job, JobEpoch, JobEvent, WorkerSlot, utcnow
from service.pool.dispatcher import dispatch_once
from service.states import JobStatus
from tests.pool.test_dispatch import STALE_S, factory, job, postgres, slot, team

__all__ = ["factory", "postgres"]


def queue(session: Session, team_id: str, count: int, *, oldest_minutes: int = 60) -> list[str]:
    """``count`` queued jobs of ``team_id``, oldest first, a second apart."""
    start = utcnow() - timedelta(minutes=oldest_minutes)
    return [job(session, team_id, created_at=start + timedelta(seconds=i)) for i in range(count)]


def status_events(session: Session) -> dict[str, list[JobEvent]]:
    events: dict[str, list[JobEvent]] = {}
    for event in session.scalars(select(JobEvent).where(JobEvent.type == "status").order_by(JobEvent.id)):
        events.setdefault(event.job_id, []).append(event)
    return events


def test_200_slots_start_200_distinct_jobs_fairly_each_with_one_event(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        teams = [team(session, max_jobs=100) for _ in range(5)]
        queued = {t: queue(session, t, 50) for t in teams}
        for _ in range(200):
            slot(session, "cpu")
    now = utcnow()
    sent: list[tuple[str, str]] = []
    started = dispatch_once(factory, lambda j, c: sent.append((j, c)), stale_after_s=STALE_S, pickup_seconds=30, now=now)

    assert len(started) == 200 and len({s.job_id for s in started}) == 200 and len({s.slot for s in started}) == 200
    assert sent == [(s.job_id, "cpu") for s in started]  # every start sent once, in start order
    per_team = Counter(s.team_id for s in started)
    assert per_team == {t: 40 for t in teams}  # equal usage: the starts go round the teams
    for t in teams:  # first in, first out inside a team
        assert {s.job_id for s in started if s.team_id == t} == set(queued[t][:40])
    with factory() as session:
        running = {j.id: j for j in session.scalars(select(Job).where(Job.status == "running"))}
        assert set(running) == {s.job_id for s in started}
        assert all(j.lease_owner is None and j.lease_expires_at == now + timedelta(seconds=30) for j in running.values())
        assert all(j.started_at is not None and j.updated_at >= now for j in running.values())
        held = dict(session.execute(select(WorkerSlot.name, WorkerSlot.job_id)).tuples().all())
        assert held == {s.slot: s.job_id for s in started}
        events = status_events(session)
        assert set(events) == set(running)  # the 50 still queued got none
        for s in started:
            (event,) = events[s.job_id]
            assert event.message == "dispatched to a cpu worker" and event.level == "info"
            assert event.data == {"from": "queued", "to": "running"}
        assert session.scalar(select(Job.id).where(Job.status == "queued").limit(1)) is not None


def test_caps_running_jobs_and_co2_budgets_hold_in_a_batched_pass(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        capped = team(session, max_jobs=3)
        job(session, capped, status="running")  # already holds one of its 3
        capped_jobs = queue(session, capped, 10)
        spent = team(session, max_jobs=100, budget=1.0)
        done = job(session, spent, status="succeeded")
        session.add(JobEpoch(job_id=done, epoch_index=0, rho=1.0, selected_tensor_count=1, selected_tensor_names=[],
                             predicted_flops=1, executed_flops=1, full_ft_flops=1, wall_seconds=1, kg_co2=1.5))
        spent_jobs = queue(session, spent, 10, oldest_minutes=120)  # the oldest, but over budget
        free = [team(session, max_jobs=100) for _ in range(2)]
        for t in free:
            queue(session, t, 30)
        for _ in range(20):
            slot(session, "cpu")
    started = dispatch_once(factory, lambda *_: None, stale_after_s=STALE_S, pickup_seconds=30)
    per_team = Counter(s.team_id for s in started)
    assert len(started) == 20
    assert per_team[capped] == 2 and {s.job_id for s in started if s.team_id == capped} == set(capped_jobs[:2])
    assert per_team[spent] == 0
    assert sorted(per_team[t] for t in free) == [9, 9]
    with factory() as session:
        assert set(session.scalars(select(Job.status).where(Job.id.in_(spent_jobs)))) == {"queued"}


def test_a_requeued_job_keeps_its_first_start_time(factory: sessionmaker[Session]) -> None:
    first_start = utcnow() - timedelta(hours=2)
    with factory.begin() as session:
        t = team(session)
        again = job(session, t, started_at=first_start, attempts=1)  # ran before, its worker died
        fresh = job(session, t)
        slot(session, "cpu")
        slot(session, "cpu")
    now = utcnow()
    assert sorted(s.job_id for s in dispatch_once(factory, lambda *_: None, stale_after_s=STALE_S,
                                                  pickup_seconds=30, now=now)) == sorted([again, fresh])
    with factory() as session:
        assert session.get_one(Job, again).started_at == first_start
        assert session.get_one(Job, again).attempts == 1
        assert session.get_one(Job, fresh).started_at >= now  # type: ignore[operator]


def test_transition_many_checks_every_job_before_writing_any(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        t = team(session)
        waiting, finished = job(session, t), job(session, t, status="succeeded")
    with factory() as session:
        jobs = [session.get_one(Job, waiting), session.get_one(Job, finished)]
        with pytest.raises(IllegalTransition, match="already succeeded"):
            transition_many(session, jobs, JobStatus.RUNNING)
        assert session.scalar(select(Job.status).where(Job.id == waiting)) == "queued"
        assert session.scalars(select(JobEvent)).all() == []


def test_transition_many_records_each_jobs_own_previous_status(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        t = team(session)
        ids = [job(session, t), job(session, t, status="waiting_for_green"), job(session, t)]
    with factory.begin() as session:
        jobs = [session.get_one(Job, i) for i in ids]
        transition_many(session, jobs, JobStatus.CANCELLED, messages=["a", "b", "c"])
        assert all(j.status == "cancelled" and j.finished_at is not None for j in jobs)
    with factory() as session:
        events = status_events(session)
        assert [(events[i][0].message, events[i][0].data["from"]) for i in ids] == \
            [("a", "queued"), ("b", "waiting_for_green"), ("c", "queued")]  # type: ignore[index]
        assert set(session.scalars(select(Job.status))) == {"cancelled"}


def loaded_then_second_cancelled(factory: sessionmaker[Session]) -> tuple[Session, list[Job], list[str]]:
    """Three queued jobs loaded in a session, then the second cancelled by another session."""
    with factory.begin() as session:
        t = team(session)
        ids = [job(session, t) for _ in range(3)]
    mine = factory()
    jobs = [mine.get_one(Job, i) for i in ids]
    mine.commit()  # the objects stay loaded (as `queued`); the next statement starts a new transaction
    with factory.begin() as other:  # e.g. the team cancels one meanwhile
        other.execute(update(Job).where(Job.id == ids[1]).values(status="cancelled"))
    return mine, jobs, ids


def test_transition_many_refuses_a_job_changed_concurrently(factory: sessionmaker[Session]) -> None:
    mine, jobs, ids = loaded_then_second_cancelled(factory)
    with pytest.raises(IllegalTransition, match="1 of 3 queued jobs changed concurrently"):
        transition_many(mine, jobs, JobStatus.RUNNING)
    mine.rollback()
    mine.close()
    with factory() as session:
        assert [session.get_one(Job, i).status for i in ids] == ["queued", "cancelled", "queued"]
        assert session.scalars(select(JobEvent)).all() == []


def test_transition_many_can_skip_a_job_changed_concurrently(factory: sessionmaker[Session]) -> None:
    mine, jobs, ids = loaded_then_second_cancelled(factory)
    changed = transition_many(mine, jobs, JobStatus.RUNNING, messages=["a", "b", "c"], skip_changed=True)
    mine.commit()
    mine.close()
    assert changed == [ids[0], ids[2]]
    with factory() as session:
        assert [session.get_one(Job, i).status for i in ids] == ["running", "cancelled", "running"]
        events = status_events(session)
        assert set(events) == {ids[0], ids[2]} and [events[i][0].message for i in (ids[0], ids[2])] == ["a", "c"]


def test_a_team_with_a_long_queue_of_old_jobs_does_not_hide_a_newer_team(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        busy, other = team(session, max_jobs=1000), team(session)
        queue(session, busy, 600, oldest_minutes=120)  # more old jobs than a pass used to read (500)
        newer = job(session, other)
        for _ in range(10):
            slot(session, "cpu")
    started = dispatch_once(factory, lambda *_: None, stale_after_s=STALE_S, pickup_seconds=30)
    assert len(started) == 10 and newer in {s.job_id for s in started}  # the first pass, not the 61st
    assert Counter(s.team_id for s in started) == {busy: 9, other: 1}


def test_every_team_with_room_gets_a_start_when_the_heads_exceed_a_pass(factory: sessionmaker[Session]) -> None:
    """A team's queue is read up to its room (max_concurrent_jobs less its running jobs), and a
    pass takes each team's first job before any team's second: 400 teams, each older than the
    next, with 700 startable jobs between them (more than a pass reads), all get one."""
    with factory.begin() as session:
        teams = [team(session, max_jobs=2) for _ in range(400)]
        for i, t in enumerate(teams):
            queue(session, t, 3, oldest_minutes=1000 - i)  # team 0's jobs are the oldest
            if i % 4 == 0:
                job(session, t, status="running")  # one of its two already runs
        for _ in range(400):
            slot(session, "cpu")
    started = dispatch_once(factory, lambda *_: None, stale_after_s=STALE_S, pickup_seconds=30)
    assert Counter(s.team_id for s in started) == {t: 1 for t in teams}


def test_a_team_with_a_long_queue_fills_the_slots_the_others_leave(factory: sessionmaker[Session]) -> None:
    """Each team is first read up to its share of a pass (on Postgres); a team that had all
    of its share started is read again for the slots left, in the same pass."""
    with factory.begin() as session:
        busy = team(session, max_jobs=1000)
        busy_jobs = queue(session, busy, 300, oldest_minutes=120)
        others = [team(session) for _ in range(19)]
        for t in others:
            job(session, t)
        for _ in range(200):
            slot(session, "cpu")
    started = dispatch_once(factory, lambda *_: None, stale_after_s=STALE_S, pickup_seconds=30)
    assert len(started) == 200 and Counter(s.team_id for s in started) == {busy: 181, **{t: 1 for t in others}}
    assert {s.job_id for s in started if s.team_id == busy} == set(busy_jobs[:181])  # first in, first out


def test_a_job_cancelled_while_the_pass_orders_is_skipped_and_its_slot_goes_to_the_next(
        factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> None:
    with factory.begin() as session:
        t = team(session)
        first, second, third = queue(session, t, 3)
        slot(session, "cpu")
        slot(session, "cpu")
    real_order = dispatcher_module.order_dispatch
    calls = []

    def cancel_the_first(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:  # after the pass read the queue, before it starts anything
            with factory.begin() as other:
                if other.get_bind().dialect.name == "postgresql":  # fail, not hang, on a row lock
                    other.execute(text("SET LOCAL lock_timeout = '2s'"))
                other.execute(update(Job).where(Job.id == first).values(status="cancelled"))
        return real_order(*args, **kwargs)

    monkeypatch.setattr(dispatcher_module, "order_dispatch", cancel_the_first)
    started = dispatch_once(factory, lambda *_: None, stale_after_s=STALE_S, pickup_seconds=30)
    assert [s.job_id for s in started] == [second, third] and len(calls) == 2  # ordered again
    with factory() as session:
        assert session.get_one(Job, first).status == "cancelled"
        assert set(status_events(session)) == {second, third}
        assert sorted(filter(None, session.scalars(select(WorkerSlot.job_id)))) == sorted([second, third])
