"""Fault class: unbounded work from user input, and one job's failure blocking the scheduler loop.

A deadline in year 9999 once made the loop build a 30-minute forecast to it (6.5 GB, the loop
stalled for every team, a MemoryError retried forever). Every horizon is now bounded: the API
refuses deadlines beyond GREENTRAINER_POOL__MAX_DEADLINE_DAYS, every forecast stops at
MAX_FORECAST_HOURS, and each job's planning is isolated in the pass.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from greentrainer_carbon.forecaster import MAX_FORECAST_SLOTS, Forecaster, SourceAnswer
from greentrainer_carbon.history import MemoryHistory
from greentrainer_carbon.planner import Planner
from greentrainer_carbon.providers.chain import MAX_CACHED_FORECASTS, CachedProvider
from greentrainer_carbon.providers.static import StaticCountryProvider
from greentrainer_carbon.readings import MAX_FORECAST_HOURS, CarbonReading
from greentrainer_carbon.windows import WindowPlanner, choose_start
from service.db import make_engine, make_session_factory, upgrade
from service.models import Dataset, Job, JobEvent, Team, WorkerSlot, new_id, utcnow
from service.pool.green import plan_windows
from service.pool.loop import tick
from service.settings import PoolSettings
from tests.scripted_carbon import DirtyThenClean, ScriptedPlanning
from tests.service.conftest import Api

FAR = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def test_a_deadline_beyond_the_limit_is_422_naming_it(hard_api: Api) -> None:
    team = hard_api.new_team()
    dataset = hard_api.upload(team)
    limit = hard_api.settings.pool.max_deadline_days
    for deadline in ("9999-12-31T23:59:59Z",
                     (utcnow() + timedelta(days=limit + 1)).isoformat()):
        r = hard_api.submit(team, dataset, rho_policy={
            "type": "carbon-aware", "rho_min": 0.5, "rho_max": 0.8, "region": "GB",
            "deadline": deadline})
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["field"] == "rho_policy.deadline"
        assert "GREENTRAINER_POOL__MAX_DEADLINE_DAYS" in error["message"]
        assert f"{limit:g} days" in error["message"]
    r = hard_api.submit(team, dataset, rho_policy={
        "type": "carbon-aware", "rho_min": 0.5, "rho_max": 0.8, "region": "GB",
        "deadline": (utcnow() + timedelta(days=limit - 1)).isoformat()})
    assert r.status_code == 201, r.text


def test_every_forecast_stops_at_the_documented_horizon() -> None:
    provider = StaticCountryProvider("GBR")
    for hours in (1e9, float("inf"), float("nan"), (FAR - utcnow()).total_seconds() / 3600):
        assert len(provider.forecast(hours)) == MAX_FORECAST_HOURS * 2
    cached = CachedProvider(provider, ttl_s=3600)
    for n in range(3 * MAX_CACHED_FORECASTS):  # a horizon that moves every pass
        cached.forecast(24 + n * 0.5)
    assert len(cached._forecasts) <= MAX_CACHED_FORECASTS

    class Flat:
        def ask(self, first_slot: int, n_slots: int) -> SourceAnswer:
            assert n_slots <= MAX_FORECAST_SLOTS
            import numpy as np
            return SourceAnswer(CarbonReading(100.0, utcnow(), "flat"),
                                np.full(n_slots, 100.0), 100.0)

    forecaster = Forecaster(Flat(), MemoryHistory(), "GB")
    made = forecaster.forecast(utcnow(), 10**12)
    assert made.g_per_kwh.size == MAX_FORECAST_SLOTS


def test_a_window_for_a_far_deadline_is_searched_within_the_forecast() -> None:
    now = utcnow()
    readings = StaticCountryProvider("GBR").forecast(MAX_FORECAST_HOURS)
    choice = choose_start(readings, now, timedelta(hours=2), FAR)
    assert now <= choice.start <= now + timedelta(hours=MAX_FORECAST_HOURS)
    planner = WindowPlanner(readings, now)
    assert planner.grid.size <= MAX_FORECAST_HOURS * 2 + 1


@pytest.fixture
def factory(tmp_path: Path) -> sessionmaker[Session]:
    url = f"sqlite:///{tmp_path / 'pool.sqlite'}"
    upgrade(url)
    return make_session_factory(make_engine(url))


def _team(session: Session) -> str:
    team = Team(id=new_id("team"), name=f"t-{secrets.token_hex(4)}", max_concurrent_jobs=100)
    session.add(team)
    session.flush()
    session.add(Dataset(id=f"ds_{team.id}", team_id=team.id, name="d", format="jsonl",
                        sha256="0" * 64, size_bytes=1, row_count=1, source_field="source",
                        target_field="target", storage_key="k"))
    session.flush()
    return team.id


def _job(session: Session, team_id: str, deadline: datetime | None, **values: Any) -> str:
    now = utcnow()
    job = Job(id=new_id("job"), team_id=team_id, status="queued", model="m",
              model_source="local_path", method="greentrainer",
              hyperparameters=values.pop("hyperparameters", {"epochs": 1}),
              rho_policy={"type": "fixed", "rho": 0.5}, gpu_class="any",
              training_dataset_id=f"ds_{team_id}", deadline=deadline, created_at=now,
              updated_at=now, attempts=0, **values)
    session.add(job)
    session.flush()
    return job.id


class _Recorded(DirtyThenClean):
    """Dirty for 6 hours, then clean (a job with room waits); remembers how far it was asked."""

    def __init__(self) -> None:
        super().__init__(6)
        self.asked: list[int] = []

    def ask(self, first_slot: int, n_slots: int) -> SourceAnswer:
        self.asked.append(n_slots)
        return super().ask(first_slot, n_slots)


def _events(factory: sessionmaker[Session], job_id: str) -> list[JobEvent]:
    with factory() as session:
        return list(session.scalars(select(JobEvent).where(JobEvent.job_id == job_id)
                                    .order_by(JobEvent.id)))


def test_one_jobs_failing_plan_is_recorded_on_it_and_the_others_are_planned(
        factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> None:
    grid = _Recorded()
    with factory.begin() as session:
        team = _team(session)
        far = _job(session, team, FAR)  # a row written before deadlines were bounded
        broken = _job(session, team, utcnow() + timedelta(days=2),
                      hyperparameters={"epochs": "many"})
        starved = _job(session, team, utcnow() + timedelta(days=3))
        fine = _job(session, team, utcnow() + timedelta(days=1))
    real_decide = Planner.decide

    def decide(self: Planner, now: datetime, done: Any, **kw: Any) -> Any:
        deadline = self.spec.deadline
        if deadline is not None and now + timedelta(days=2.5) < deadline and deadline.year < 9999:
            raise MemoryError("planning this job ran out of memory")
        return real_decide(self, now, done, **kw)

    monkeypatch.setattr(Planner, "decide", decide)
    planning = ScriptedPlanning(grid)
    plan_windows(factory, planning, default_epoch_seconds=1800)
    assert grid.asked and max(grid.asked) <= MAX_FORECAST_SLOTS
    with factory() as session:
        status = {j.id: j.status for j in session.scalars(select(Job))}
    assert status[fine] == "waiting_for_green" and status[far] == "waiting_for_green"
    for failed, cause in ((broken, "ValueError"), (starved, "MemoryError")):
        warnings = [e for e in _events(factory, failed) if e.level == "warning"]
        assert len(warnings) == 1 and cause in warnings[0].message, warnings
        assert status[failed] == "queued"
    plan_windows(factory, planning, default_epoch_seconds=1800)  # not planned again, no retry
    for failed in (broken, starved):
        assert len([e for e in _events(factory, failed) if e.level == "warning"]) == 1


def test_a_failing_planning_stage_does_not_stop_dispatch_or_recovery(
        factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        team = _team(session)
        jobs = {_job(session, team, utcnow() + timedelta(days=1)), _job(session, team, None)}
        now = utcnow()
        for n in (1, 2):
            session.add(WorkerSlot(name=f"w:{n}:any", gpu_class="any", hostname="h", pid=n,
                                   heartbeat_at=now, started_at=now))

    class Exploding(ScriptedPlanning):
        def forecaster(self, region: str | None) -> Any:
            raise MemoryError("the forecast blew up")

    sent: list[str] = []
    ok = tick(factory, PoolSettings(), lambda job_id, _gpu: sent.append(job_id),
              Exploding(DirtyThenClean(6)))
    assert ok  # the failure stays with the job that met it (an event says why) ...
    assert set(sent) == jobs  # ... and the queued jobs still started
