"""The database-backed dispatcher, reconciler and green-window planner on SQLite and Postgres."""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.db import make_engine, make_session_factory, upgrade
from service.models import Dataset, Job, JobEpoch, JobEvent, Team, WorkerSlot, new_id, utcnow
from service.pool import slots
from service.pool.dispatcher import dispatch_once
from service.pool.green import plan_windows
from service.pool.reconciler import reconcile
from tests.scripted_carbon import DirtyThenClean, ScriptedPlanning
from tests.service.conftest import postgres  # noqa: F401  (the shared Postgres fixture)

STALE_S = 10.0


def make_factory(url: str) -> sessionmaker[Session]:
    upgrade(url)
    return make_session_factory(make_engine(url))


@pytest.fixture(params=["sqlite", "postgres"])
def factory(request: pytest.FixtureRequest, tmp_path: Path) -> sessionmaker[Session]:
    if request.param == "sqlite":
        return make_factory(f"sqlite:///{tmp_path / 'd.sqlite'}")
    return make_factory(request.getfixturevalue("postgres").create())


def team(session: Session, max_jobs: int = 5, budget: float | None = None) -> str:
    row = Team(id=new_id("team"), name=f"t-{secrets.token_hex(4)}",
               max_concurrent_jobs=max_jobs, monthly_co2_budget_kg=budget)
    session.add(row)
    session.flush()
    session.add(Dataset(id=f"ds_{row.id}", team_id=row.id, name="d", format="jsonl",
                        sha256="0" * 64, size_bytes=1, row_count=1, source_field="source",
                        target_field="target", storage_key="k"))
    session.flush()
    return row.id


def job(session: Session, team_id: str, gpu_class: str = "any", **values: Any) -> str:
    now = values.pop("created_at", utcnow())
    row = Job(id=new_id("job"), team_id=team_id, status=values.pop("status", "queued"),
              model="m", model_source="local_path", method="greentrainer",
              hyperparameters={"epochs": 2},
              rho_policy=values.pop("rho_policy", {"type": "fixed", "rho": 0.5}),
              gpu_class=gpu_class, training_dataset_id=f"ds_{team_id}", created_at=now,
              updated_at=now, attempts=values.pop("attempts", 0), **values)
    session.add(row)
    session.flush()
    return row.id


def slot(session: Session, gpu_class: str, *, age_s: float = 0.0) -> str:
    name = f"w-{secrets.token_hex(4)}"
    slots.heartbeat(session, name, gpu_class=gpu_class, hostname="h", pid=1, gpu_ids=None,
                    now=utcnow() - timedelta(seconds=age_s))
    return name


def status(factory: sessionmaker[Session], job_id: str) -> str:
    with factory() as session:
        return session.get(Job, job_id).status  # type: ignore[union-attr]


def run(factory: sessionmaker[Session], sent: list[tuple[str, str]] | None = None) -> list[str]:
    sent = sent if sent is not None else []
    started = dispatch_once(factory, lambda j, c: sent.append((j, c)), stale_after_s=STALE_S,
                            pickup_seconds=30)
    return [s.job_id for s in started]


def test_jobs_start_only_on_a_fitting_fresh_slot(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        t = team(session)
        big, anywhere = job(session, t, "a100"), job(session, t, "any")
        slot(session, "cpu")
        slot(session, "a100", age_s=STALE_S * 2)  # its worker stopped beating
    sent: list[tuple[str, str]] = []
    assert run(factory, sent) == [anywhere]
    assert sent == [(anywhere, "cpu")]
    assert status(factory, big) == "queued" and status(factory, anywhere) == "running"
    with factory() as session:
        assert session.scalar(select(WorkerSlot.job_id).where(WorkerSlot.gpu_class == "cpu")) \
            == anywhere


def test_tasks_are_sent_after_the_commit(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        job(session, team(session))
        slot(session, "cpu")
    seen: list[str] = []
    dispatch_once(factory, lambda job_id, _c: seen.append(status(factory, job_id)),
                  stale_after_s=STALE_S, pickup_seconds=30)
    assert seen == ["running"]


def test_team_quota_and_fair_share_order_the_starts(factory: sessionmaker[Session]) -> None:
    early = utcnow() - timedelta(minutes=5)
    with factory.begin() as session:
        heavy, light, capped = team(session), team(session), team(session, max_jobs=1)
        used = job(session, heavy, status="succeeded")
        session.add(JobEpoch(job_id=used, epoch_index=0, rho=1.0, selected_tensor_count=1,
                             selected_tensor_names=[], predicted_flops=1, executed_flops=1,
                             full_ft_flops=1, wall_seconds=1, kg_co2=2.0))
        heavy_job = job(session, heavy, created_at=early)  # first in, but its team used more
        light_job = job(session, light)
        capped_jobs = [job(session, capped) for _ in range(3)]
        for _ in range(3):
            slot(session, "cpu")
    started = run(factory)
    assert len(started) == 3 and light_job in started
    assert started[-1] == heavy_job  # the team that used CO2 this month goes after the others
    assert sum(j in capped_jobs for j in started) == 1  # max_concurrent_jobs=1


def test_a_team_past_its_monthly_co2_budget_waits(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        t = team(session, budget=1.0)
        done = job(session, t, status="succeeded")
        session.add(JobEpoch(job_id=done, epoch_index=0, rho=1.0, selected_tensor_count=1,
                             selected_tensor_names=[], predicted_flops=1, executed_flops=1,
                             full_ft_flops=1, wall_seconds=1, kg_co2=1.5))
        waiting = job(session, t)
        slot(session, "cpu")
    assert run(factory) == [] and status(factory, waiting) == "queued"


def test_reconciler_requeues_expired_leases_and_fails_after_max_attempts(
        factory: sessionmaker[Session]) -> None:
    past = utcnow() - timedelta(seconds=5)
    with factory.begin() as session:
        t = team(session)
        retry = job(session, t, status="running", lease_owner="dead", lease_expires_at=past,
                    attempts=1)
        give_up = job(session, t, status="running", lease_owner="dead", lease_expires_at=past,
                      attempts=3)
        live = job(session, t, status="running", lease_owner="alive",
                   lease_expires_at=utcnow() + timedelta(minutes=1), attempts=1)
        cancelled = job(session, t, status="cancelled")
        held = slot(session, "cpu")
        session.get(WorkerSlot, held).job_id = cancelled  # type: ignore[union-attr]
    outcome = reconcile(factory, max_attempts=3, stale_after_s=STALE_S)
    assert outcome.requeued == [retry] and outcome.failed == [give_up]
    assert [status(factory, j) for j in (retry, give_up, live)] == ["queued", "failed", "running"]
    with factory() as session:
        assert session.get(Job, give_up).error_code == "too_many_attempts"  # type: ignore
        assert session.get(WorkerSlot, held).job_id is None  # type: ignore[union-attr]


def test_deadline_jobs_wait_for_the_green_window_and_are_replanned(
        factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        j = job(session, team(session), deadline=utcnow() + timedelta(hours=12))
        slot(session, "cpu")
    clean_after_4h = ScriptedPlanning(DirtyThenClean(4))
    assert plan_windows(factory, clean_after_4h, default_epoch_seconds=1800) == 1
    assert run(factory) == [] and status(factory, j) == "waiting_for_green"
    with factory() as session:
        planned = session.get(Job, j).planned_start_at  # type: ignore[union-attr]
        events = session.scalars(select(JobEvent.data).where(JobEvent.job_id == j,
                                                              JobEvent.type == "green_window"))
        plan = next(iter(events))
    assert planned is not None and planned >= utcnow() + timedelta(hours=3.5)
    assert "cleaner hours are forecast" in plan["reason"] and plan["forecast_sources_hours"]
    clean_after_6h = ScriptedPlanning(DirtyThenClean(6))
    plan_windows(factory, clean_after_6h, default_epoch_seconds=1800)
    with factory() as session:
        replanned = session.get(Job, j).planned_start_at  # type: ignore[union-attr]
    assert replanned is not None and replanned >= planned + timedelta(hours=1.5)
    plan_windows(factory, clean_after_6h, default_epoch_seconds=1800,
                 now=replanned + timedelta(seconds=1))
    assert status(factory, j) == "queued"
    assert run(factory) == [j]


class Broken(ScriptedPlanning):
    def forecaster(self, region: str | None) -> Any:
        if region == "BAD":
            raise RuntimeError("no provider for BAD")
        return super().forecaster(region)


def test_one_jobs_failed_planning_is_recorded_on_it_and_the_pass_goes_on(
        factory: sessionmaker[Session]) -> None:
    deadline = utcnow() + timedelta(hours=12)
    with factory.begin() as session:
        t = team(session)
        bad = job(session, t, deadline=deadline, region="BAD")
        good = job(session, t, deadline=deadline)
    plan_windows(factory, Broken(DirtyThenClean(4)), default_epoch_seconds=1800)
    assert status(factory, good) == "waiting_for_green" and status(factory, bad) == "queued"
    with factory() as session:
        message = session.scalar(select(JobEvent.message).where(
            JobEvent.job_id == bad, JobEvent.type == "green_window"))
        assert session.get(Job, bad).planned_start_at is not None  # type: ignore[union-attr]
    assert message is not None and "no provider for BAD" in message


def test_a_dispatched_job_no_worker_took_goes_back_to_the_queue(
        factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        t = team(session)
        lost = job(session, t)
        slot(session, "cpu")
    assert run(factory) == [lost]  # the message is then lost (a Redis restart)
    later = utcnow() + timedelta(seconds=31)  # past the 30 s pickup deadline
    outcome = reconcile(factory, max_attempts=3, stale_after_s=STALE_S, now=later)
    assert outcome.requeued == [lost] and status(factory, lost) == "queued"
    with factory() as session:
        assert session.scalar(select(WorkerSlot.job_id)) is None
        assert session.get(Job, lost).attempts == 0  # type: ignore[union-attr]
    assert run(factory) == [lost]  # and it is dispatched again
