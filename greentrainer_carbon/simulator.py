"""Replay a trace against a stream of jobs, using the production schedules, policy and window code.

Conventions (documented in docs/scheduler.md):
- time in 30-minute slots; the trace value of a slot is its mean intensity; emissions integrate
  the piecewise-constant trace exactly over each epoch's [start, end);
- an epoch at full cost lasts `epoch_hours` at `power_kw`; at rho its energy is rho x the full
  epoch's energy (FLOPs ~ rho x full). Two time models:
  "fixed-slot": the epoch keeps its full-cost wall-clock slot and draws rho x power_kw over it
  (the GPU's freed share goes to other work); "compressed": the epoch lasts rho x epoch_hours
  at power_kw. NB: in the compressed model, back-to-back epochs of any rho mix with the same
  mean rho span the same interval at the same power, so (c) equals (b) exactly; carbon-aware
  rho can only pay off there when epochs can pause (d-pause);
- deadline = arrival + slack + the full-cost duration; starts are planned with the longest
  duration the schedule may take (rho_max) so no schedule can run past it;
- decisions happen at slot boundaries; the live value of the current slot is known, forecasts
  for later slots come from the daily-profile model (non-peeking) or the trace itself (oracle);
- jobs whose history or horizon touches a missing trace value are left out of the stream.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from greentrainer_carbon.errors import BudgetExhaustedError, BudgetInfeasibleError, WindowError
from greentrainer_carbon.forecast import daily_profile_forecast
from greentrainer_carbon.outlook import TraceOutlook, oracle_rows
from greentrainer_carbon.policy import RhoBounds
from greentrainer_carbon.schedule import BudgetRhoSchedule, CarbonAwareRhoSchedule, FixedRhoSchedule, RhoSchedule
from greentrainer_carbon.trace_data import Trace
from greentrainer_carbon.windows import best_start_slot, plan_epoch_starts

SLOTS_PER_HOUR = 2
HISTORY_SLOTS = 7 * 48
TIME_MODELS = ("fixed-slot", "compressed")


@dataclass(frozen=True)
class JobKind:
    name: str
    n_epochs: int
    epoch_hours: float  # at full cost (rho = 1)

    @property
    def full_slots(self) -> float:
        return self.n_epochs * self.epoch_hours * SLOTS_PER_HOUR


SHORT_JOB = JobKind("short (3 x 1 h)", 3, 1.0)
LONG_JOB = JobKind("long (10 x 2 h)", 10, 2.0)


@dataclass(frozen=True)
class SimConfig:
    n_jobs: int = 400
    slack_hours: float = 24.0
    rho_fixed: float = 0.6
    rho_min: float = 0.4
    rho_max: float = 0.8
    power_kw: float = 1.0
    forecast_days: int = 7
    forecast_tau_hours: float = 24.0
    budget_fraction: float = 0.7
    time_model: str = "fixed-slot"

    def __post_init__(self) -> None:
        if self.time_model not in TIME_MODELS:
            raise ValueError(
                f"time_model must be one of {', '.join(TIME_MODELS)}, got {self.time_model!r}"
            )
        RhoBounds(self.rho_min, self.rho_max)

    seed: int = 0

    @property
    def bounds(self) -> RhoBounds:
        return RhoBounds(self.rho_min, self.rho_max)


@dataclass
class Outcome:
    kg_co2: float
    rhos: list[float]
    finish_slot: float
    deadline_slot: float
    budget_kg: float | None = None

    @property
    def missed(self) -> bool:
        return self.finish_slot > self.deadline_slot + 1e-9


@dataclass
class Results:
    """outcomes[(policy, forecast)] -> one Outcome per job; forecast: now, forecast or oracle."""

    kind: JobKind
    outcomes: dict[tuple[str, str], list[Outcome]] = field(default_factory=dict)
    rejected_budget: int = 0
    stopped_budget: int = 0


class TraceSimulation:
    def __init__(self, trace: Trace, config: SimConfig) -> None:
        self.trace = trace
        self.config = config
        self.values = trace.values_g_per_kwh.astype(float)
        self.cumulative = np.concatenate(([0.0], np.cumsum(np.nan_to_num(self.values))))
        self.missing = np.concatenate(([0], np.cumsum(np.isnan(self.values))))

    # -- accounting -------------------------------------------------------------------------
    def kg_co2(self, start_slot: float, end_slot: float) -> float:
        """Emissions of power_kw between two (fractional) slot times, from the real trace."""
        positions = np.arange(self.cumulative.size, dtype=float)
        slot_integral = np.interp(end_slot, positions, self.cumulative) - np.interp(
            start_slot, positions, self.cumulative
        )
        return float(self.config.power_kw * slot_integral / SLOTS_PER_HOUR / 1000.0)

    def epoch_slots(self, kind: JobKind, rho: float) -> float:
        """Wall-clock length of one epoch at rho, in slots."""
        full = kind.epoch_hours * SLOTS_PER_HOUR
        return full if self.config.time_model == "fixed-slot" else rho * full

    def epoch_kg(self, start_slot: float, kind: JobKind, rho: float) -> tuple[float, float]:
        """(kg CO2, end slot) of one epoch at rho started at `start_slot`."""
        end = start_slot + self.epoch_slots(kind, rho)
        draw = rho if self.config.time_model == "fixed-slot" else 1.0
        return draw * self.kg_co2(start_slot, end), end

    # -- job stream -------------------------------------------------------------------------
    def arrivals(self, kind: JobKind) -> np.ndarray:
        horizon = self.horizon(kind)
        first, last = HISTORY_SLOTS, self.values.size - horizon - 1
        candidates = np.arange(first, last)
        clean = self.missing[candidates + horizon] - self.missing[candidates - HISTORY_SLOTS] == 0
        candidates = candidates[clean]
        rng = np.random.default_rng(self.config.seed)
        count = min(self.config.n_jobs, candidates.size)
        return np.sort(rng.choice(candidates, size=count, replace=False))

    def horizon(self, kind: JobKind) -> int:
        return int(math.ceil(self.config.slack_hours * SLOTS_PER_HOUR + kind.full_slots)) + 2

    def outlook(self, kind: JobKind, arrivals: np.ndarray, mode: str) -> TraceOutlook:
        horizon = self.horizon(kind)
        first, last = int(arrivals.min()), int(arrivals.max()) + horizon
        if mode == "oracle":
            rows = oracle_rows(self.values, first, last, horizon)
        else:
            rows = daily_profile_forecast(
                self.values,
                np.arange(first, last + 1),
                horizon,
                self.config.forecast_days,
                self.config.forecast_tau_hours,
            )
        return TraceOutlook(
            self.values, self.trace.start, rows, first, source=f"trace:{self.trace.name}"
        )

    # -- policies ---------------------------------------------------------------------------
    def run_epochs(
        self, kind: JobKind, start: float, deadline: float, schedule: RhoSchedule, outlook: TraceOutlook
    ) -> Outcome:
        """Run all epochs back to back from `start`, asking the schedule at each epoch boundary."""
        t, kg, rhos = start, 0.0, []
        outlook.planned_offsets_slots = None
        for k in range(kind.n_epochs):
            rho, _ = schedule.rho_for_epoch(k, outlook.time_of(t))
            epoch_kg, end = self.epoch_kg(t, kind, rho)
            if isinstance(schedule, BudgetRhoSchedule):
                schedule.record_epoch(k, epoch_kg)
            kg, t = kg + epoch_kg, end
            rhos.append(rho)
        return Outcome(kg, rhos, t, deadline)

    def green_start(
        self,
        kind: JobKind,
        arrival: int,
        deadline: float,
        planned_rho: float,
        outlook: TraceOutlook,
    ) -> int:
        """Re-plan every slot with the forecast known then; start when the best start is 'now'."""
        longest = kind.n_epochs * self.epoch_slots(kind, max(planned_rho, self.config.rho_max))
        latest = int(math.floor(deadline - longest + 1e-9))
        duration = kind.n_epochs * self.epoch_slots(kind, planned_rho)
        t = arrival
        while t < latest and best_start_slot(outlook.forecast_row(t), duration, latest - t) != 0:
            t += 1
        return t

    def run_pausable(
        self, kind: JobKind, arrival: int, deadline: float, schedule: RhoSchedule, outlook: TraceOutlook
    ) -> Outcome:
        """Place each epoch in the cleanest forecast slots by the deadline; re-plan each slot."""
        guard = self.epoch_slots(kind, self.config.rho_max)
        t, k, kg, rhos = arrival, 0, 0.0, []
        while k < kind.n_epochs:
            try:
                plan = plan_epoch_starts(
                    outlook.forecast_row(t), guard, kind.n_epochs - k, deadline - t
                )
            except WindowError:
                plan = [0] + [int(math.ceil(guard)) * i for i in range(1, kind.n_epochs - k)]
            if plan[0] != 0:
                t += 1
                continue
            outlook.planned_offsets_slots = np.asarray(plan[1:], dtype=float)
            rho, _ = schedule.rho_for_epoch(k, outlook.time_of(t))
            epoch_kg, end = self.epoch_kg(t, kind, rho)
            kg += epoch_kg
            rhos.append(rho)
            k += 1
            finish = end
            t = int(math.ceil(end - 1e-9))
        outlook.planned_offsets_slots = None
        return Outcome(kg, rhos, finish, deadline)

    def simulate(self, kind: JobKind, progress: Callable[[str], None] | None = None) -> Results:
        """Every policy on the same job stream, with the non-peeking forecast and the oracle."""
        cfg = self.config
        arrivals = self.arrivals(kind)
        results = Results(kind)
        n = kind.n_epochs
        epoch_target_hours = self.epoch_slots(kind, cfg.rho_fixed) / SLOTS_PER_HOUR

        def add(key: tuple[str, str], outcome: Outcome) -> None:
            results.outcomes.setdefault(key, []).append(outcome)

        for mode in ("forecast", "oracle"):
            if progress:
                progress(f"{self.trace.name} {kind.name}: {mode}")
            outlook = self.outlook(kind, arrivals, mode)
            aware = partial(
                CarbonAwareRhoSchedule, cfg.bounds, n, outlook, epoch_target_hours, cfg.rho_fixed
            )
            for arrival in (int(a) for a in arrivals):
                deadline = arrival + cfg.slack_hours * SLOTS_PER_HOUR + kind.full_slots
                run = partial(self.run_epochs, kind, deadline=deadline, outlook=outlook)
                if mode == "forecast":
                    add(("a", "now"), run(arrival, schedule=FixedRhoSchedule(1.0, n)))
                    add(("b", "now"), run(arrival, schedule=FixedRhoSchedule(cfg.rho_fixed, n)))
                    self._budget(kind, arrival, deadline, outlook, results)
                add(("c", mode), run(arrival, schedule=aware()))
                start = self.green_start(kind, arrival, deadline, 1.0, outlook)
                add(("w", mode), run(start, schedule=FixedRhoSchedule(1.0, n)))
                start = self.green_start(kind, arrival, deadline, cfg.rho_fixed, outlook)
                add(("b+w", mode), run(start, schedule=FixedRhoSchedule(cfg.rho_fixed, n)))
                add(("d-start", mode), run(start, schedule=aware()))
                add(("d-pause", mode), self.run_pausable(kind, arrival, deadline, aware(), outlook))
        return results

    def _budget(
        self, kind: JobKind, arrival: int, deadline: float, outlook: TraceOutlook, results: Results
    ) -> None:
        """CO2-budget mode at once: budget = budget_fraction x full-cost kg at the recent mean."""
        cfg = self.config
        energy = cfg.power_kw * kind.epoch_hours
        recent = self.values[arrival - HISTORY_SLOTS : arrival + 1]
        budget = cfg.budget_fraction * kind.n_epochs * energy * float(np.nanmean(recent)) / 1000.0
        schedule = BudgetRhoSchedule(
            cfg.bounds,
            kind.n_epochs,
            outlook,
            self.epoch_slots(kind, cfg.rho_fixed) / SLOTS_PER_HOUR,
            energy,
            budget,
        )
        try:
            schedule.check_feasible(outlook.time_of(arrival))
        except BudgetInfeasibleError:
            results.rejected_budget += 1
            return
        try:
            outcome = self.run_epochs(kind, arrival, deadline, schedule, outlook)
        except BudgetExhaustedError:
            results.stopped_budget += 1
            outcome = Outcome(
                sum(schedule.spent_kg.values()),
                [schedule.decisions[k] for k in sorted(schedule.spent_kg)],
                float("nan"),
                deadline,
            )
        outcome.budget_kg = budget
        results.outcomes.setdefault(("budget", "forecast"), []).append(outcome)
