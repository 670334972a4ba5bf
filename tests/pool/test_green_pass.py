"""What a green-window pass (`service.pool.green.plan_windows`) writes, on SQLite and Postgres:
each job's row once when it begins to wait (its status and planned start in one UPDATE), in a
number of statements that does not grow with the queue, and nothing at all when a later pass
finds the same windows. A pass over 10,000 jobs is timed by benchmarks/scheduler_pass.py."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event, func, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from greentrainer_carbon.forecaster import Forecaster, SourceAnswer
from greentrainer_carbon.history import FloatArray, MemoryHistory
from service.models import Job, JobEvent, utcnow
from service.pool.green import plan_windows
from tests.pool.test_dispatch import factory, job, postgres, team
from tests.scripted_carbon import DirtyThenClean, ScriptedPlanning

__all__ = ["factory", "postgres"]

CARBON_AWARE = {"type": "carbon-aware", "rho_min": 0.3, "rho_max": 0.8}


_ROW_WRITES = {  # every UPDATE of a job's row, noted by the database itself
    "sqlite": ["CREATE TABLE job_writes (job_id TEXT)",
               "CREATE TRIGGER note_job_write AFTER UPDATE ON jobs "
               "BEGIN INSERT INTO job_writes VALUES (NEW.id); END"],
    "postgresql": ["CREATE TABLE job_writes (job_id TEXT)",
                   "CREATE FUNCTION note_job_write() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$ BEGIN INSERT INTO job_writes VALUES (NEW.id); RETURN NULL; END $$",
                   "CREATE TRIGGER note_job_write AFTER UPDATE ON jobs FOR EACH ROW "
                   "EXECUTE FUNCTION note_job_write()"]}


@dataclass
class Writes:
    """The writing statements a block sent, and how many times it wrote each job's row."""

    statements: list[str] = field(default_factory=list)
    rows: Counter[str] = field(default_factory=Counter)


@contextmanager
def writes(factory: sessionmaker[Session]) -> Iterator[Writes]:
    seen = Writes()
    engine = factory.kw["bind"]
    with engine.begin() as connection:
        if not inspect(connection).has_table("job_writes"):
            for statement in _ROW_WRITES[engine.dialect.name]:
                connection.exec_driver_sql(statement)
        connection.exec_driver_sql("DELETE FROM job_writes")

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        verb = statement.split(None, 1)[0].upper()
        if verb in ("INSERT", "UPDATE", "DELETE"):
            seen.statements.append(verb)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)
    with engine.connect() as connection:
        seen.rows.update(row[0] for row in connection.exec_driver_sql("SELECT job_id FROM job_writes"))


def deadline_jobs(factory: sessionmaker[Session], hours: list[float], **values: Any) -> list[str]:
    now = utcnow()
    with factory.begin() as session:
        t = team(session, max_jobs=100)
        return [job(session, t, deadline=now + timedelta(hours=h), rho_policy=CARBON_AWARE,
                    **values) for h in hours]


def snapshot(factory: sessionmaker[Session]) -> tuple[dict[str, tuple[str, datetime | None,
                                                                        datetime]], int]:
    with factory() as session:
        jobs = {j.id: (j.status, j.planned_start_at, j.updated_at)
                for j in session.scalars(select(Job))}
        return jobs, session.scalar(select(func.count()).select_from(JobEvent)) or 0


# 2 h: the two epochs only just fit, they run now; 12 h to 30 days: they wait for the clean hours
HOURS = [2.0, *(12.0 + 17.5 * i for i in range(40))]


def test_the_first_pass_writes_each_job_once_in_a_few_statements(
        factory: sessionmaker[Session]) -> None:
    ids = deadline_jobs(factory, HOURS)
    with writes(factory) as seen:
        changed = plan_windows(factory, ScriptedPlanning(DirtyThenClean(4)),
                               default_epoch_seconds=1800)
    jobs, events = snapshot(factory)
    waiting = [i for i in ids if jobs[i][0] == "waiting_for_green"]
    assert changed == len(waiting) == len(ids) - 1 and jobs[ids[0]][0] == "queued"
    assert all(jobs[i][1] is not None for i in ids)
    assert seen.rows == Counter(ids)  # the status and the planned start in one UPDATE
    # the starting job's planned start, the waiting jobs' UPDATE, the status and plan events
    assert sorted(seen.statements) == ["INSERT", "INSERT", "UPDATE", "UPDATE"]
    assert events == 1 + 2 * len(waiting)  # "starts now"; a status and a planned-start event


def test_a_second_pass_that_finds_the_same_windows_writes_nothing(
        factory: sessionmaker[Session]) -> None:
    deadline_jobs(factory, HOURS)
    planning = ScriptedPlanning(DirtyThenClean(4))
    plan_windows(factory, planning, default_epoch_seconds=1800)
    before = snapshot(factory)
    with writes(factory) as seen:
        changed = plan_windows(factory, planning, default_epoch_seconds=1800,
                               now=utcnow() + timedelta(minutes=5))
    assert changed == 0 and seen.statements == []
    assert snapshot(factory) == before


def test_a_changed_forecast_rewrites_only_the_jobs_it_moves(
        factory: sessionmaker[Session]) -> None:
    ids = deadline_jobs(factory, HOURS)
    plan_windows(factory, ScriptedPlanning(DirtyThenClean(4)), default_epoch_seconds=1800)
    (before, events) = snapshot(factory)
    with writes(factory) as seen:  # the clean hours now begin 2 hours later
        plan_windows(factory, ScriptedPlanning(DirtyThenClean(6)), default_epoch_seconds=1800)
    (after, events_after) = snapshot(factory)
    moved = [i for i in ids[1:] if after[i][1] != before[i][1]]
    assert moved and all(after[i][1] - before[i][1] >= timedelta(hours=1.5)  # type: ignore[operator]
                         for i in moved)
    assert seen.rows == Counter(moved) and events_after - events == len(moved)
    assert all(after[i][0] == "waiting_for_green" for i in ids[1:])


def test_a_job_whose_policy_is_not_an_object_fails_alone(factory: sessionmaker[Session]) -> None:
    fine, odd = deadline_jobs(factory, [12.0, 12.0])
    with factory.begin() as session:  # a row no API would write: the pass must not stop on it
        session.get(Job, odd).rho_policy = 5  # type: ignore[union-attr]
    plan_windows(factory, ScriptedPlanning(DirtyThenClean(4)), default_epoch_seconds=1800)
    jobs, _ = snapshot(factory)
    assert jobs[fine][0] == "waiting_for_green" and jobs[odd][0] == "queued"
    with factory() as session:
        warning = session.scalar(select(JobEvent.message).where(
            JobEvent.job_id == odd, JobEvent.level == "warning"))
    assert warning is not None and "carbon planning failed" in warning


def test_jobs_alike_but_for_their_policys_key_order_share_a_decision(
        factory: sessionmaker[Session]) -> None:
    """The pass compares policies without their deadline as the database writes them back;
    the same policy written in another key order is still the same policy."""
    now = utcnow()
    with factory.begin() as session:
        t = team(session)
        ids = [job(session, t, deadline=now + timedelta(days=2), rho_policy=policy)
               for policy in (CARBON_AWARE, dict(reversed(CARBON_AWARE.items())),
                              {**CARBON_AWARE, "deadline": (now + timedelta(days=2)).isoformat()})]
    plan_windows(factory, ScriptedPlanning(DirtyThenClean(4)), default_epoch_seconds=1800)
    with factory() as session:
        plans = [session.scalar(select(JobEvent.data).where(
            JobEvent.job_id == i, JobEvent.type == "green_window")) for i in ids]
    assert plans[0] is not None and plans[0]["run_now"] is False
    assert plans[1:] == plans[:-1]


class Asked(DirtyThenClean):
    """Remembers how long each forecast asked of it was."""

    def __init__(self, dirty_hours: float) -> None:
        super().__init__(dirty_hours)
        self.asked: list[int] = []

    def ask(self, first_slot: int, n_slots: int) -> SourceAnswer:
        self.asked.append(n_slots)
        return super().ask(first_slot, n_slots)


class CountedHistory(MemoryHistory):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def grid(self, region: str, first_slot: int, n_slots: int) -> FloatArray:
        self.reads += 1
        return super().grid(region, first_slot, n_slots)


def test_a_pass_reads_a_regions_history_once(factory: sessionmaker[Session]) -> None:
    """Each job with a later deadline asks for a longer forecast, made again each time; the
    recorded past it reads (production: a query) is the same all pass long."""
    deadline_jobs(factory, HOURS)
    history = CountedHistory()

    class Planning(ScriptedPlanning):
        def forecaster(self, region: str | None) -> Forecaster:
            return Forecaster(self.source, history, region or "XX")

    grid = Asked(4)
    plan_windows(factory, Planning(grid), default_epoch_seconds=1800)
    assert len(set(grid.asked)) > 1 and history.reads == 1


def test_a_pass_plans_with_the_energy_model_fitted_for_the_jobs_gpu_class(
        factory: sessionmaker[Session]) -> None:
    """The pass plans a job's window with the model the worker will plan its epochs with: the
    one fitted from its GPU class's measured epochs (and the assumed where none are measured),
    recorded with each decision."""
    from greentrainer_carbon.energy import J_PER_KWH
    from service.models import JobEpoch

    now = utcnow()
    with factory.begin() as session:
        t = team(session, max_jobs=100)
        done = job(session, t, gpu_class="h200", status="succeeded")
        for index, rho in enumerate([0.5, 0.7, 1.0]):  # 100 W host + 300 W computing 60 s x rho
            seconds = 4.0 + rho * 60.0
            session.add(JobEpoch(job_id=done, epoch_index=index, rho=rho,
                                 selected_tensor_count=1, selected_tensor_names=["w"],
                                 predicted_flops=rho, executed_flops=rho, full_ft_flops=1.0,
                                 wall_seconds=seconds,
                                 energy_kwh=(100.0 * seconds + 300.0 * rho * 60.0) / J_PER_KWH))
        fitted = job(session, t, gpu_class="h200", deadline=now + timedelta(hours=30),
                     rho_policy=CARBON_AWARE)
        assumed = job(session, t, gpu_class="a100", deadline=now + timedelta(hours=30),
                      rho_policy=CARBON_AWARE)
    plan_windows(factory, ScriptedPlanning(DirtyThenClean(4)), default_epoch_seconds=1800)
    with factory() as session:
        models = {e.job_id: e.data["energy_model"] for e in session.scalars(
            select(JobEvent).where(JobEvent.type == "green_window"))
            if e.data and "energy_model" in e.data}
    assert models[fitted]["source"] == "fitted from 3 epochs on h200"
    assert abs(models[fitted]["host_w"] - 100.0) < 1e-6
    assert abs(models[fitted]["compute_w"] - 300.0) < 1e-6
    assert models[assumed]["source"] == "assumed"
