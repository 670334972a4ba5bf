"""Production decides exactly what the simulator decides: the real stack (API, the scheduler loop
with production's `CarbonPlanning`, a real Celery worker process; Postgres + Redis) runs two
deadline jobs (one with a CO2 budget) on an accelerated clock (1 real second = 15 minutes) over the replayed GB 2020
trace, then the simulator's driver asks the same `Planner` over the same trace at the moments
production decided, fed production's measured epoch seconds and kWh (and the full-cost epoch time
and energy model each decision planned with), so only the decisions are compared.

The window (GB 2020, 2020-02-10 20:00 UTC on) is dirty for the first 3 hours and then alternates
clean and dirty half hours: every job waits for its green window before it starts
(`waiting_for_green`) and, when its epochs fall as planned, pauses between epochs (a carbon
pause: checkpoint kept, slot freed, resumed by the loop at the planned restart).

Tolerances: rho and the CO2 of each job to 1 %; a planned start (of a green window or a restart)
exactly (both are slot starts from the same forecast); production's actual start of an epoch may
lag its planned restart by the pipeline (a loop pass, dispatch, the worker's loading: about 1-3
real seconds, i.e. 15-45 clock minutes, plus the other job's epoch when both want the one
worker in the same slot: a queue, not a decision) and must never come before it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from greentrainer_carbon.clock import AcceleratedClock
from greentrainer_carbon.config import CarbonSettings
from greentrainer_carbon.energy import EnergyModel
from greentrainer_carbon.history import SLOT, slot_of, slot_start
from greentrainer_carbon.readings import CarbonReading, parse_utc
from greentrainer_carbon.simulator import Moment, SimConfig, TraceSimulation
from greentrainer_carbon.trace_data import Trace, load_trace
from service.models import Job, JobEpoch, JobEvent
from service.pool.intensity import record_readings
from tests.e2e.conftest import Stack, _production, write_tiny_model

FACTOR = 900.0  # clock seconds per real second: a 30-minute slot lasts 2 s
BOOT_S = 50.0  # real seconds before the clock accelerates: the worker starts and warms up
WINDOW_SLOT = 2536  # 2020-02-10 20:00 UTC in gb-2020: dirty 3 h, then clean/dirty half hours
DEADLINE_SLOTS = 12  # 6 clock hours
HISTORY_SLOTS = 7 * 48
TERMINAL = ("succeeded", "failed", "cancelled")


def _shifted(trace: Trace, anchor: datetime) -> Trace:
    """``trace`` moved so that its slot `WINDOW_SLOT` starts at ``anchor`` (what the replaying
    provider answers there, with the matching ``trace_anchor`` setting)."""
    return Trace(trace.name, anchor - WINDOW_SLOT * SLOT, trace.values_g_per_kwh)


@pytest.fixture
def accelerated(tmp_path: Path) -> Iterator[tuple[Stack, AcceleratedClock, Trace]]:
    start = datetime.now(UTC) + timedelta(seconds=BOOT_S)
    anchor = slot_start(slot_of(start))
    trace = _shifted(load_trace("gb-2020"), anchor)
    carbon = CarbonSettings(providers="trace", trace="gb-2020", trace_anchor=trace.start,
                            clock=f"accelerated:{start.isoformat()}:{FACTOR:g}",
                            energy_resume_s=0)  # resuming a tiny model costs next to nothing
    for stack in _production(tmp_path, None, carbon):
        # A deployment that has run for a week: the history every forecast reads.
        first = slot_of(anchor) - HISTORY_SLOTS
        with stack.factory.begin() as session:
            record_readings(session, "GB", [
                CarbonReading(float(trace.values_g_per_kwh[s - slot_of(trace.start)]),
                              slot_start(s), "trace:gb-2020") for s in range(first, slot_of(anchor))])
        yield stack, AcceleratedClock(start, FACTOR), trace


def _energy(data: dict[str, Any]) -> EnergyModel:
    return EnergyModel(host_w=data["host_w"], compute_w=data["compute_w"],
                       overhead_s=data["overhead_s"], resume_s=data["resume_s"],
                       source=data["source"])


def _decisions(stack: Stack, job_id: str) -> tuple[Job, list[tuple[str, dict[str, Any], Moment]]]:
    """Every decision production recorded for the job, in order, as (event type, the decision,
    the moment the simulator is asked at with what was measured of the epoch it started)."""
    with stack.factory() as session:
        job = session.get(Job, job_id)
        assert job is not None
        epochs = {e.epoch_index: e for e in session.scalars(
            select(JobEpoch).where(JobEpoch.job_id == job_id))}
        events = list(session.scalars(select(JobEvent).where(JobEvent.job_id == job_id)
                                      .order_by(JobEvent.id)))
    out = []
    for event in events:
        data = event.data or {}
        plan = data.get("plan") if event.type in ("carbon_wait", "epoch_start") else data
        if event.type not in ("green_window", "carbon_wait", "epoch_start") or not plan or \
                "decided_at" not in plan:
            continue
        epoch = epochs.get(data["epoch_index"]) if event.type == "epoch_start" else None
        out.append((event.type, plan, Moment(
            parse_utc(plan["decided_at"]), bool(plan["must_run"]), float(plan["full_epoch_s"]),
            _energy(plan["energy_model"]), epoch.wall_seconds if epoch else None,
            epoch.energy_kwh if epoch else None)))
    return job, out


def test_production_decides_every_epoch_as_the_simulator_does_on_an_accelerated_clock(
        accelerated: tuple[Stack, AcceleratedClock, Trace]) -> None:
    stack, clock, trace = accelerated
    started = time.monotonic()
    stack.start_worker()
    team = stack.team()
    models = stack.model_dir.parent
    # The worker's first job loads its libraries (~20 s here): done before the clock runs.
    warm = stack.submit(team, model=str(write_tiny_model(models / "warm")),
                        rho_policy={"type": "fixed", "rho": 0.6}, hyperparameters={"epochs": 1})
    assert stack.wait(team, warm, lambda j: j["status"] in TERMINAL)["status"] == "succeeded"
    assert clock() < clock.start, "the worker took longer than BOOT_S to warm up"
    while clock() < clock.start:
        time.sleep(0.1)
    deadline = slot_start(slot_of(clock()) + DEADLINE_SLOTS).isoformat()
    aware = {"type": "carbon-aware", "rho_min": 0.5, "rho_max": 0.8, "region": "GB",
             "deadline": deadline}
    policies = {"aware": aware, "budget": {**aware, "co2_budget_kg": 0.15}}
    jobs = {name: stack.submit(team, model=str(write_tiny_model(models / name)),  # own throughput
                               rho_policy=policy, hyperparameters={"epochs": 3})
            for name, policy in policies.items()}
    for job_id in jobs.values():
        job = stack.wait(team, job_id, lambda j: j["status"] in TERMINAL, timeout=120)
        assert job["status"] == "succeeded", job

    simulation = TraceSimulation(trace, SimConfig(), region="GB")
    waits = pauses = 0
    lags: list[float] = []
    rho_gap = 0.0
    for name, job_id in jobs.items():
        row, decisions = _decisions(stack, job_id)
        followed = simulation.follow(3, dict(row.rho_policy), [m for _, _, m in decisions])
        planned: datetime | None = None
        for (kind, production, moment), (simulated, _kg) in zip(decisions, followed, strict=True):
            where = f"job {name}, {kind} decided at {moment.at.isoformat()}"
            assert simulated is not None, f"{where}: the simulator's budget ran out"
            assert simulated.run_now == production["run_now"], f"{where}: {production['reason']}"
            if not production["run_now"]:
                assert simulated.start_at == parse_utc(production["start_at"]), where
                planned = simulated.start_at
                waits += kind == "green_window"
                pauses += kind == "carbon_wait"
                continue
            assert simulated.rho == pytest.approx(production["rho"], rel=0.01), where
            rho_gap = max(rho_gap, abs((simulated.rho or 0.0) - production["rho"]))
            if kind == "epoch_start" and planned is not None:  # production kept the plan
                assert planned <= moment.at, f"{where}: before its planned start {planned}"
                lags.append((moment.at - planned) / SLOT)
                planned = None
        ran = [kg for (kind, _, _), (_, kg) in zip(decisions, followed, strict=True)
               if kind == "epoch_start"]
        with stack.factory() as session:
            measured = list(session.scalars(select(JobEpoch.kg_co2).where(
                JobEpoch.job_id == job_id)))
        assert len(ran) == len(measured) == 3, name
        assert float(np.sum(ran)) == pytest.approx(sum(kg or 0.0 for kg in measured), rel=0.01)
    # The trace asks every job to wait for its green window and, when its epochs fall as planned,
    # to pause between them; but which slot a decision falls in depends on real seconds (a
    # loaded machine moves it: in one CI run a job reached the scheduler after the dirty hours),
    # so the count is reported, and only "some decision to wait was compared" is required. The
    # decisions above are compared either way; pauses themselves: tests/e2e/test_pause_resume.py.
    assert waits + pauses >= 1
    print(f"carbon equality: {len(jobs)} jobs, {waits} green waits, {pauses} carbon pauses, "
          f"largest rho gap {rho_gap:.2g}, "
          f"start lag after a planned start {min(lags, default=0):.2f}-{max(lags, default=0):.2f} slots, "
          f"{time.monotonic() - started:.0f} s")
