"""Replay a trace against a stream of jobs by driving production's decision engine.

Nothing here decides anything: every job asks the same `Planner` the dispatcher and the worker
ask (`greentrainer_carbon.planner`), through the same `Forecaster`, whose source is the trace
replayed at a fake clock and whose history is the trace's past at that clock. The simulator only
moves the clock, runs the epochs the planner starts (their time and energy from the planner's
`EnergyModel`) and adds up their emissions against the real trace.

Conventions (docs/scheduler.md):
- time in 30-minute slots of the UTC clock; a waiting job asks again at every slot (the
  dispatcher asks every few seconds, but the forecast changes once a slot);
- an epoch at rho lasts ``overhead_s + rho x full_epoch_s`` and draws the model's power; every
  start (the first, and each after a pause) adds the model's ``resume_s`` of loading;
- its true emissions integrate the trace over the epoch; production records the energy at the
  intensity the decision saw (``charged``): both are kept;
- deadline = arrival + slack + the job's full-cost duration;
- forecasts: "history" (the provider gives none: the region's recorded past makes the forecast;
  it sees only the past), "provider" (a 48-hour provider forecast with an error that grows with
  the lead time, the history profile beyond it), "oracle" (the trace itself: perfect foresight).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from greentrainer_carbon.energy import EnergyModel
from greentrainer_carbon.errors import BudgetExhaustedError, BudgetInfeasibleError
from greentrainer_carbon.forecaster import REFERENCE_SLOTS, Forecaster, SourceAnswer
from greentrainer_carbon.history import SLOT_S, FloatArray, TraceHistory, slot_of, slot_start
from greentrainer_carbon.planner import Decision, EpochDone, JobSpec, Planner
from greentrainer_carbon.policy import G_PER_KG, RhoBounds
from greentrainer_carbon.providers.static import codecarbon_country_intensities
from greentrainer_carbon.readings import CarbonReading
from greentrainer_carbon.rho_policy import RHO_FLOOR
from greentrainer_carbon.trace_data import Trace

HISTORY_SLOTS = 7 * 48
FORECASTS = ("history", "provider", "oracle")
POLICIES = ("full", "fixed", "window", "carbon_aware", "both")
STATIC_COUNTRY = {"gb": "GBR", "fr": "FRA"}


@dataclass(frozen=True)
class JobKind:
    name: str
    n_epochs: int
    full_epoch_hours: float  # wall time of one epoch at full cost

    @property
    def full_hours(self) -> float:
        return self.n_epochs * self.full_epoch_hours


SHORT_JOB = JobKind("short", 3, 1.0)  # 3 hours at full cost
LONG_JOB = JobKind("long", 12, 2.0)  # a day at full cost
KINDS = {"short": SHORT_JOB, "long": LONG_JOB}


@dataclass(frozen=True)
class SimConfig:
    n_jobs: int = 300
    seed: int = 0
    slack_hours: float = 24.0
    rho_fixed: float = 0.6
    rho_min: float = RHO_FLOOR  # the product's quality floor (greentrainer_carbon.rho_policy)
    rho_max: float = 0.8
    rho_target: float | None = 0.6  # None: the quantile map instead of the mean-preserving one
    energy: EnergyModel = field(default_factory=EnergyModel)
    provider_hours: float = 48.0
    provider_error: float = 0.15  # relative error (1 sigma) of the provider's forecast at 48 h
    budget_fraction: float = 0.7

    def __post_init__(self) -> None:
        RhoBounds(self.rho_min, self.rho_max)
        if not 0 < self.rho_fixed <= 1:
            raise ValueError(f"rho_fixed must be in (0, 1], got {self.rho_fixed}")
        if self.rho_target is not None and not self.rho_min <= self.rho_target <= self.rho_max:
            raise ValueError(f"rho_target must lie in [rho_min, rho_max], got {self.rho_target}")
        if self.n_jobs < 1 or self.slack_hours < 0:
            raise ValueError("n_jobs must be >= 1 and slack_hours >= 0")

    def policy(self, name: str, deadline: datetime, budget_kg: float | None = None) -> dict[str, Any]:
        """The rho policy a user would submit for each simulated policy."""
        if name == "full":
            return {"type": "fixed", "rho": 1.0}
        if name == "fixed":
            return {"type": "fixed", "rho": self.rho_fixed}
        if name == "window":
            return {"type": "fixed", "rho": self.rho_fixed, "deadline": deadline}
        aware: dict[str, Any] = {"type": "carbon-aware", "rho_min": self.rho_min,
                                 "rho_max": self.rho_max, "rho_target": self.rho_target}
        if self.rho_target is None:
            aware["mapping"] = "quantile"
        if name == "carbon_aware":
            return aware
        if name == "both":
            return {**aware, "deadline": deadline}
        if name == "budget":
            return {**aware, "co2_budget_kg": budget_kg}
        raise ValueError(f"unknown policy {name!r}; choose from {', '.join(POLICIES)}, budget")


class SimClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


class ReplaySource:
    """The trace as an intensity source at the fake clock: the live value of the clock's slot,
    and a forecast of the chosen kind (module docstring)."""

    def __init__(self, trace: Trace, clock: SimClock, forecast: str, static_g_per_kwh: float,
                 config: SimConfig) -> None:
        if forecast not in FORECASTS:
            raise ValueError(f"forecast must be one of {', '.join(FORECASTS)}, got {forecast!r}")
        self.trace, self.clock, self.mode = trace, clock, forecast
        self.static = static_g_per_kwh
        self.config = config
        self.first_slot = slot_of(trace.start)
        self.values = np.asarray(trace.values_g_per_kwh, dtype=float)

    def _values(self, first: int, n: int) -> FloatArray:
        index = np.arange(first, first + n) - self.first_slot
        ok = (index >= 0) & (index < self.values.size)
        return np.where(ok, self.values[np.clip(index, 0, self.values.size - 1)], np.nan)

    def ask(self, first_slot: int, n_slots: int) -> SourceAnswer:
        live_value = float(self._values(first_slot, 1)[0])
        live = CarbonReading(live_value, self.clock.now, f"trace:{self.trace.name}")
        if self.mode == "history":
            grid = np.full(n_slots, np.nan)
        elif self.mode == "oracle":
            grid = self._values(first_slot, n_slots)
        else:
            horizon = min(n_slots, int(self.config.provider_hours * 2))
            truth = self._values(first_slot, horizon)
            rng = np.random.default_rng((self.config.seed, first_slot))
            lead = np.arange(horizon) / (self.config.provider_hours * 2)
            noisy = truth * (1 + self.config.provider_error * np.sqrt(lead)
                             * rng.standard_normal(horizon))
            grid = np.concatenate((np.maximum(noisy, 0.0), np.full(n_slots - horizon, np.nan)))
        return SourceAnswer(live, grid, self.static)


@dataclass(frozen=True)
class Moment:
    """A moment production's planner decided at, with what it planned with (its full-cost epoch
    time and energy model) and, when an epoch then ran, what was measured of it."""

    at: datetime
    must_run: bool
    full_epoch_s: float
    energy: EnergyModel
    seconds: float | None = None
    kwh: float | None = None


@dataclass
class JobOutcome:
    policy: str
    arrival: datetime
    deadline: datetime
    kg_co2: float = 0.0  # true emissions: energy x the trace over each epoch
    kg_charged: float = 0.0  # as production records them: energy x the decision's live reading
    rhos: list[float] = field(default_factory=list)
    starts: list[datetime] = field(default_factory=list)
    finish: datetime | None = None
    pauses: int = 0
    refused: bool = False
    stopped: bool = False
    budget_kg: float | None = None

    @property
    def over_budget(self) -> bool:
        return self.budget_kg is not None and self.kg_charged > self.budget_kg * (1 + 1e-9)

    @property
    def missed(self) -> bool:
        return self.finish is not None and self.finish > self.deadline + timedelta(seconds=1)


class _Run:
    """One job under one policy: asks its planner, runs the epochs it starts."""

    def __init__(self, sim: TraceSimulation, outcome: JobOutcome, spec: JobSpec,
                 forecaster: Forecaster) -> None:
        self.sim, self.outcome, self.spec = sim, outcome, spec
        self.planner = Planner(spec, forecaster)
        self.done: list[EpochDone] = []
        self.last_end: datetime | None = None

    def step(self, now: datetime) -> datetime | None:
        """Act at ``now``; the time of the next step, or None when the job is over."""
        try:
            decision = self.planner.decide(now, self.done)
        except BudgetExhaustedError:
            self.outcome.stopped = True
            return None
        if not decision.run_now:
            return slot_start(slot_of(now) + 1)  # ask again next slot, with the next forecast
        rho = float(decision.rho if decision.rho is not None else 1.0)
        energy = self.spec.energy
        full_s = self.spec.full_epoch_s
        resumed = self.last_end is None or now > self.last_end
        load_s = energy.resume_s if resumed else 0.0
        if self.last_end is not None and now > self.last_end:
            self.outcome.pauses += 1
        seconds = energy.epoch_seconds(full_s, rho) + load_s
        kwh = energy.epoch_kwh(full_s, rho) + (energy.host_w + energy.compute_w) * load_s / 3.6e6
        end = now + timedelta(seconds=seconds)
        charged = kwh * decision.reading.carbon_intensity_g_per_kwh / G_PER_KG
        self.outcome.kg_co2 += kwh * self.sim.mean_intensity(now, end) / G_PER_KG
        self.outcome.kg_charged += charged
        self.outcome.rhos.append(rho)
        self.outcome.starts.append(now)
        self.done.append(EpochDone(len(self.done), rho, now, seconds - load_s, charged))
        self.last_end = end
        if len(self.done) == self.spec.n_epochs:
            self.outcome.finish = end
            return None
        return end


class TraceSimulation:
    def __init__(self, trace: Trace, config: SimConfig, region: str | None = None) -> None:
        self.trace, self.config = trace, config
        self.region = region or trace.name.split("-")[0].upper()
        self.values = np.asarray(trace.values_g_per_kwh, dtype=float)
        self.first_slot = slot_of(trace.start)
        self.cumulative = np.concatenate(([0.0], np.cumsum(np.nan_to_num(self.values))))
        country = STATIC_COUNTRY.get(self.region.lower(), "GBR")
        self.static = codecarbon_country_intensities().get(country, float(np.nanmean(self.values)))

    def mean_intensity(self, start: datetime, end: datetime) -> float:
        """The trace's mean over [start, end), exact for its piecewise-constant slots."""
        positions = np.arange(self.cumulative.size, dtype=float)
        a = (start.timestamp() / SLOT_S) - self.first_slot
        b = (end.timestamp() / SLOT_S) - self.first_slot
        integral = np.interp(b, positions, self.cumulative) - np.interp(a, positions, self.cumulative)
        return float(integral / max(b - a, 1e-9))

    def arrivals(self, kind: JobKind) -> list[datetime]:
        """Random arrival slots whose week of history and whole horizon have no missing value."""
        horizon = int(math.ceil((self.config.slack_hours + kind.full_hours) * 2)) + 4
        missing = np.concatenate(([0], np.cumsum(np.isnan(self.values))))
        candidates = np.arange(HISTORY_SLOTS, self.values.size - horizon - 1)
        clean = missing[candidates + horizon] - missing[candidates - HISTORY_SLOTS] == 0
        candidates = candidates[clean]
        rng = np.random.default_rng(self.config.seed)
        count = min(self.config.n_jobs, candidates.size)
        chosen = np.sort(rng.choice(candidates, size=count, replace=False))
        return [slot_start(self.first_slot + int(s)) for s in chosen]

    def run(self, kind: JobKind, forecast: str, policies: tuple[str, ...] = POLICIES,
            progress: Callable[[str], None] | None = None) -> list[JobOutcome]:
        """Every policy for every arrival, in one event loop over time (the planners of all
        jobs share the region's forecaster, as the jobs of one region do in production)."""
        arrivals = self.arrivals(kind)
        clock = SimClock(arrivals[0])
        forecaster = self.forecaster(kind, forecast, clock)
        events: list[tuple[datetime, int, _Run]] = []
        outcomes: list[JobOutcome] = []
        full_s = kind.full_epoch_hours * 3600.0
        for arrival in arrivals:
            deadline = arrival + timedelta(hours=self.config.slack_hours + kind.full_hours)
            for name in policies:
                budget = self.budget_kg(kind, arrival) if name == "budget" else None
                outcome = JobOutcome(name, arrival, deadline, budget_kg=budget)
                outcomes.append(outcome)
                spec = JobSpec(kind.n_epochs, self.config.policy(name, deadline, budget), full_s,
                               self.config.energy)
                run = _Run(self, outcome, spec, forecaster)
                if budget is not None and not self._budget_feasible(run, arrival, clock):
                    outcome.refused = True
                    continue
                heapq.heappush(events, (arrival, len(outcomes), run))
        steps = 0
        while events:
            now, order, run = heapq.heappop(events)
            clock.now = now
            following = run.step(now)
            if following is not None:
                heapq.heappush(events, (following, order, run))
            steps += 1
            if progress and steps % 20000 == 0:
                progress(f"{self.trace.name} {kind.name} {forecast}: {steps} decisions")
        return outcomes

    def forecaster(self, kind: JobKind, forecast: str, clock: SimClock) -> Forecaster:
        """The region's forecaster at the fake clock (shared by every job of a run)."""
        source = ReplaySource(self.trace, clock, forecast, self.static, self.config)
        return Forecaster(source, TraceHistory(self.trace, clock), self.region, cache_slots=2,
                          min_horizon_slots=REFERENCE_SLOTS)

    def follow(self, n_epochs: int, policy: Mapping[str, Any],
               moments: list[Moment]) -> list[tuple[Decision | None, float]]:
        """One job asked at given moments (production's, read from its events) rather than at
        the driver's own, over this trace with the oracle forecast (a replayed trace's provider
        forecast is the recorded future), as production's forecaster asks (`REFERENCE_SLOTS`).
        An epoch that runs is charged the moment's measured energy at the decision's live
        reading. Returns (decision, kg CO2 of the epoch it ran) per moment; (None, 0) once a
        CO2 budget is exhausted."""
        clock = SimClock(moments[0].at if moments else self.trace.start)
        source = ReplaySource(self.trace, clock, "oracle", self.static, self.config)
        forecaster = Forecaster(source, TraceHistory(self.trace, clock), self.region,
                                min_horizon_slots=REFERENCE_SLOTS)
        done: list[EpochDone] = []
        out: list[tuple[Decision | None, float]] = []
        for moment in moments:
            clock.now = moment.at
            planner = Planner(JobSpec(n_epochs, policy, moment.full_epoch_s, moment.energy),
                              forecaster)
            try:
                decision = planner.decide(moment.at, done, must_run=moment.must_run)
            except BudgetExhaustedError:
                out.append((None, 0.0))
                continue
            kg = 0.0
            if decision.run_now and moment.seconds is not None and moment.kwh is not None:
                kg = moment.kwh * decision.reading.carbon_intensity_g_per_kwh / G_PER_KG
                rho = float(decision.rho if decision.rho is not None else 1.0)
                done.append(EpochDone(len(done), rho, moment.at, moment.seconds, kg))
            out.append((decision, kg))
        return out

    def budget_kg(self, kind: JobKind, arrival: datetime) -> float:
        """A CO2 budget: budget_fraction x the job's full-cost emissions at the past week's mean."""
        slot = slot_of(arrival) - self.first_slot
        recent = float(np.nanmean(self.values[slot - HISTORY_SLOTS:slot + 1]))
        energy = self.config.energy.epoch_kwh(kind.full_epoch_hours * 3600.0, 1.0)
        return self.config.budget_fraction * kind.n_epochs * energy * recent / G_PER_KG

    def _budget_feasible(self, run: _Run, arrival: datetime, clock: SimClock) -> bool:
        clock.now = arrival
        try:
            run.planner.check_budget(arrival)
        except BudgetInfeasibleError:
            return False
        return True


def summarise(outcomes: list[JobOutcome]) -> Mapping[str, dict[str, float]]:
    """policy -> mean kg CO2 per job (true and charged), mean rho, misses, pauses, jobs."""
    by: dict[str, list[JobOutcome]] = {}
    for outcome in outcomes:
        by.setdefault(outcome.policy, []).append(outcome)
    table: dict[str, dict[str, float]] = {}
    for policy, rows in by.items():
        ran = [r for r in rows if not r.refused]
        table[policy] = {
            "jobs": float(len(rows)), "refused": float(sum(r.refused for r in rows)),
            "stopped": float(sum(r.stopped for r in ran)),
            "kg_co2": float(np.mean([r.kg_co2 for r in ran])) if ran else float("nan"),
            "kg_charged": float(np.mean([r.kg_charged for r in ran])) if ran else float("nan"),
            "mean_rho": float(np.mean([np.mean(r.rhos) for r in ran if r.rhos])) if ran else float("nan"),
            "misses": float(sum(r.missed for r in ran)),
            "pauses": float(np.mean([r.pauses for r in ran])) if ran else 0.0,
            "over_budget": float(sum(r.over_budget for r in ran)),
        }
    return table
