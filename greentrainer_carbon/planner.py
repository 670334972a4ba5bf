"""The one carbon decision engine: when a job's next epoch runs and at which rho.

Production and the simulator drive the same `Planner`: the dispatcher asks it before a job starts
and after a pause, the worker at every epoch boundary, the simulator at every slot of its fake
clock (`greentrainer_carbon.simulator`). Each call is a pure function of the job's spec, the
epochs it finished (`EpochDone`, as recorded) and the forecast at that moment, so any process
can ask it again after a crash and get the same answer from the same facts.

    decision = Planner(spec, forecaster).decide(now, done)
    decision.run_now, decision.start_at, decision.rho, decision.reason

- Without a deadline the next epoch runs now. With one, the remaining epochs are placed in the
  cleanest forecast slots that still end by the deadline (each reserved for the longest an epoch
  may take, at rho_max: `windows.plan_epoch_starts`); when the first placed slot is later than
  now the job waits (before its start) or pauses (between epochs) until then. The deadline is a
  hard promise: when the remaining epochs no longer fit a wait, the epoch runs now.
- rho: a fixed policy's rho, a schedule's rho of that epoch, or the carbon-aware rho of the
  policy module (`greentrainer_carbon.policy`) from the live intensity's rank among the region's
  recent past and forecast: mean-preserving around ``rho_target`` (the remaining epochs keep the
  job's mean rho; default the middle of its range), or the quantile map when the policy's
  ``mapping`` is ``quantile``; with a CO2 budget, the level
  whose expected emissions fit what is left of it.
- Time and energy of an epoch come from the `EnergyModel`, re-estimated from the epochs measured
  so far (their wall time), so the plan follows the worker's real pace.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from greentrainer_carbon.energy import EnergyModel
from greentrainer_carbon.errors import BudgetExhaustedError, BudgetInfeasibleError, PolicyError, WindowError
from greentrainer_carbon.forecaster import Forecaster, SourcedForecast
from greentrainer_carbon.history import SLOT_S, FloatArray, slot_start
from greentrainer_carbon.policy import (
    DEFAULT_GAIN,
    G_PER_KG,
    RhoBounds,
    budget_rho,
    mean_preserving_rho,
    quantile_rank,
    quantile_rho,
    remaining_mean_rho,
)
from greentrainer_carbon.readings import CarbonReading, parse_utc
from greentrainer_carbon.rho_policy import RhoPolicyKind, honour_floor
from greentrainer_carbon.windows import epoch_means, plan_epoch_starts

SAFETY_FACTOR = 1.1  # a budget's reserve: the remaining epochs' expected intensity x this
MAX_HORIZON_SLOTS = 48 * 45  # never plan further than 45 days ahead
UNDEADLINED_HORIZON_SLOTS = 96
PLACE_AT_TYPICAL = True  # without a deadline: two days of forecast for the rho policy
# The epochs are placed within this many days (or twice the remaining epochs' length): beyond,
# the forecast is the history profile and one day looks like the next, so a far deadline waits no
# better than this, and jobs with far deadlines share one decision (service/pool/green.py).
PLACEMENT_DAYS = 4.0


@dataclass(frozen=True)
class EpochDone:
    """A finished epoch, as recorded."""

    index: int
    rho: float
    started_at: datetime
    seconds: float
    kg_co2: float | None = None


@dataclass(frozen=True)
class JobSpec:
    """What the planner knows of a job: its epochs, its validated rho policy (the API's
    `rho_policy`: type, rho / rhos / rho_min, rho_max, rho_target, mapping, deadline,
    co2_budget_kg),
    the estimated wall time of a full-cost epoch on its worker, and the energy model."""

    n_epochs: int
    policy: Mapping[str, Any]
    full_epoch_s: float
    energy: EnergyModel = field(default_factory=EnergyModel)

    def __post_init__(self) -> None:
        if self.n_epochs < 1:
            raise PolicyError(f"n_epochs must be >= 1, got {self.n_epochs}")
        if not self.full_epoch_s > 0:
            raise PolicyError(f"full_epoch_s must be > 0, got {self.full_epoch_s}")
        kind = self.policy.get("type")
        if kind not in tuple(RhoPolicyKind):
            raise PolicyError(f"rho_policy.type {kind!r} is not one of "
                              f"{', '.join(k.value for k in RhoPolicyKind)}")

    @property
    def kind(self) -> RhoPolicyKind:
        return RhoPolicyKind(self.policy["type"])

    @property
    def bounds(self) -> RhoBounds:
        """The range rho may take in this job."""
        if self.kind == RhoPolicyKind.FIXED:
            rho = float(self.policy["rho"])
            return RhoBounds(rho, rho)
        if self.kind == RhoPolicyKind.SCHEDULE:
            rhos = [float(r) for r in self.policy["rhos"]]
            return RhoBounds(min(rhos), max(rhos))
        return RhoBounds(float(self.policy["rho_min"]), float(self.policy["rho_max"]))

    @property
    def rho_target(self) -> float:
        """The carbon-aware mean rho: the policy's ``rho_target``, or the middle of its range."""
        target = self.policy.get("rho_target")
        bounds = self.bounds
        return float(target) if target is not None else 0.5 * (bounds.rho_min + bounds.rho_max)

    @property
    def deadline(self) -> datetime | None:
        value = self.policy.get("deadline")
        if value is None or isinstance(value, datetime):
            return value
        return parse_utc(str(value), "deadline")

    @property
    def budget_kg(self) -> float | None:
        value = self.policy.get("co2_budget_kg")
        return None if value is None else float(value)


@dataclass(frozen=True)
class Decision:
    """What the job does next."""

    run_now: bool
    start_at: datetime  # now when run_now, else the planned start of the next epoch
    rho: float | None  # the next epoch's rho when run_now
    reading: CarbonReading  # the live reading the decision saw (what the epoch is charged at)
    expected_g_per_kwh: float  # mean forecast intensity over the next epoch as planned
    planned_kg_co2: float  # expected emissions of the remaining epochs as planned
    reason: str
    sources: dict[str, float] = field(default_factory=dict)  # forecast hours used, by source
    notes: tuple[str, ...] = ()
    decided_at: datetime | None = None  # the clock's time when it was decided
    must_run: bool = False  # the epoch was starting anyway: only its rho was decided
    full_epoch_s: float | None = None  # the full-cost epoch time it planned with
    energy: EnergyModel | None = None  # the energy model it planned with

    def to_dict(self) -> dict[str, Any]:
        return {"run_now": self.run_now, "start_at": self.start_at.isoformat(), "rho": self.rho,
                "carbon_intensity_g_per_kwh": self.reading.carbon_intensity_g_per_kwh,
                "carbon_intensity_source": self.reading.source,
                "expected_g_per_kwh": round(self.expected_g_per_kwh, 3),
                "planned_kg_co2": self.planned_kg_co2, "reason": self.reason,
                "forecast_sources_hours": self.sources, "notes": list(self.notes),
                "decided_at": self.decided_at.isoformat() if self.decided_at else None,
                "must_run": self.must_run, "full_epoch_s": self.full_epoch_s,
                "energy_model": self.energy.to_dict() if self.energy else None}


@dataclass(frozen=True)
class BudgetCheck:
    """The cheapest schedule a CO2 budget could take: all epochs at rho_min in the cleanest
    forecast slots before the deadline (or from now on, without one)."""

    minimum_kg_co2: float
    rho: float
    planned_starts: tuple[datetime, ...]
    sources: dict[str, float]


class Planner:
    """The decision engine for one job (see the module docstring)."""

    def __init__(self, spec: JobSpec, forecaster: Forecaster, gain: float = DEFAULT_GAIN) -> None:
        self.spec = spec
        self.forecaster = forecaster
        self.gain = gain

    # -- what the job knows of itself ------------------------------------------------------
    def full_epoch_s(self, done: Sequence[EpochDone]) -> float:
        """A full-cost epoch's wall time: the spec's estimate until epochs are measured, then
        the median of what they took (each scaled to rho = 1)."""
        energy = self.spec.energy
        measured = [(d.seconds - energy.overhead_s) / d.rho for d in done
                    if d.seconds > energy.overhead_s and d.rho > 0]
        return float(np.median(measured)) if measured else self.spec.full_epoch_s

    def _epoch_slots(self, full_s: float, rho: float) -> float:
        return self.spec.energy.epoch_seconds(full_s, rho) / SLOT_S

    def window_end(self, now: datetime, full_s: float, remaining: int,
                   deadline: datetime | None = None) -> datetime | None:
        """The end of the window the remaining epochs are placed in: the deadline (the spec's,
        or ``deadline``), or sooner for a far one (`PLACEMENT_DAYS`); None without one."""
        deadline = deadline or self.spec.deadline
        if deadline is None:
            return None
        longest_s = remaining * self.spec.energy.epoch_seconds(full_s, self.spec.bounds.rho_max)
        return min(deadline, now + timedelta(seconds=max(PLACEMENT_DAYS * 86400, 2 * longest_s)))

    def _horizon(self, now: datetime, full_s: float, remaining: int) -> int:
        deadline = self.window_end(now, full_s, remaining)
        longest = remaining * self._epoch_slots(full_s, self.spec.bounds.rho_max)
        if deadline is None:
            slots = max(UNDEADLINED_HORIZON_SLOTS, math.ceil(longest) + 2)
        else:
            slots = math.ceil(max((deadline - now).total_seconds() / SLOT_S, longest)) + 2
        return int(min(MAX_HORIZON_SLOTS, slots))

    # -- the decision ------------------------------------------------------------------------
    def decide(self, now: datetime, done: Sequence[EpochDone], *,
               must_run: bool = False) -> Decision:
        """Run the next epoch now (and at which rho), or wait until `start_at`; with
        ``must_run`` (the epoch is starting anyway, e.g. a job the dispatcher has started) only
        its rho is decided. Raises BudgetExhaustedError when a CO2 budget can no longer pay for
        the remaining epochs, PolicyError when every epoch is done, AllProvidersFailed when no
        intensity is known."""
        spec, index = self.spec, len(done)
        if index >= spec.n_epochs:
            raise PolicyError(f"all {spec.n_epochs} epochs are done")
        full_s = self.full_epoch_s(done)
        remaining = spec.n_epochs - index
        forecast = self.forecaster.forecast(now, self._horizon(now, full_s, remaining))
        wait_slots, offsets, reason = self._placement(now, forecast, full_s, remaining,
                                                      paused=index > 0)
        if wait_slots > 0 and must_run:
            offsets[0] = (now - forecast.start).total_seconds() / SLOT_S
            wait_slots, reason = 0, "the epoch starts now (the job was started)"
        if wait_slots > 0:
            start = slot_start(forecast.first_slot + wait_slots)
            return replace(self._decision(False, start, None, forecast, offsets, full_s, done,
                                          reason), decided_at=now)
        rho = honour_floor(self._rho(index, done, forecast, offsets, full_s), spec.policy)
        cap = self._deadline_cap(now, full_s, remaining)
        if cap is not None and rho > cap:
            rho, reason = cap, f"{reason}; rho capped at {cap:.3f} to finish by the deadline"
        return replace(self._decision(True, now, rho, forecast, offsets, full_s, done, reason),
                       decided_at=now, must_run=must_run)

    def _deadline_cap(self, now: datetime, full_s: float, remaining: int) -> float | None:
        """The largest carbon-aware rho at which the remaining epochs still end by the deadline
        (never below rho_min: the deadline is kept by the placement, this keeps a high rho
        from overrunning it); None when nothing caps it."""
        spec = self.spec
        if spec.deadline is None or spec.kind != RhoPolicyKind.CARBON_AWARE:
            return None
        # One start's loading is reserved: a resumed epoch begins with it.
        per_epoch_s = ((spec.deadline - now).total_seconds() - spec.energy.resume_s) / remaining
        cap = (per_epoch_s - spec.energy.overhead_s) / full_s
        return max(spec.bounds.rho_min, cap) if cap < spec.bounds.rho_max else None

    def _placement(self, now: datetime, forecast: SourcedForecast, full_s: float,
                   remaining: int, paused: bool) -> tuple[int, list[float], str]:
        """(slots to wait before the next epoch, 0 = run now; the offsets of the remaining epochs
        from the forecast's first slot, fractional; why)."""
        longest = self._epoch_slots(full_s, self.spec.bounds.rho_max)
        guard = self._epoch_slots(full_s, self._typical_rho(0)) if PLACE_AT_TYPICAL else longest
        slot_now = (now - forecast.start).total_seconds() / SLOT_S  # where now lies in slot 0
        back_to_back = [slot_now + i * guard for i in range(remaining)]
        deadline, end = self.spec.deadline, self.window_end(now, full_s, remaining)
        if deadline is None or end is None:
            return 0, back_to_back, "no deadline: the epochs run back to back"
        # The last start may be a resume: its loading must end by the deadline too.
        last_end = ((end - forecast.start).total_seconds() - self.spec.energy.resume_s) / SLOT_S
        too_close = (0, back_to_back, "the deadline leaves no room to wait: the remaining "
                     "epochs run now")
        if slot_now + remaining * longest > last_end:
            return too_close
        try:
            starts = plan_epoch_starts(forecast.g_per_kwh, guard, remaining, last_end)
        except WindowError:
            return too_close
        offsets = [float(s) for s in starts]
        if starts[0] == 0:
            offsets[0] = slot_now
            return 0, offsets, "now is among the cleanest hours before the deadline"
        if paused:  # a pause costs a resume: wait only when the forecast repays it
            saving = self._planned_kg(forecast, back_to_back, full_s) - \
                self._planned_kg(forecast, offsets, full_s)
            resume = self.spec.energy.resume_kwh() * float(np.mean(forecast.g_per_kwh)) / G_PER_KG
            if saving <= resume:
                return 0, back_to_back, ("waiting for cleaner hours would save less than "
                                         "resuming costs: the next epoch runs now")
        return starts[0], offsets, ("cleaner hours are forecast before the deadline "
                                    f"({deadline.isoformat()})")

    def _planned_kg(self, forecast: SourcedForecast, offsets: Sequence[float],
                    full_s: float) -> float:
        """Expected kg of epochs at the policy's typical rho placed at ``offsets``."""
        rho = self._typical_rho(0)
        slots = self._epoch_slots(full_s, rho)
        means = epoch_means(forecast.g_per_kwh, np.asarray(offsets, dtype=float), slots)
        return float(np.sum(means)) * self.spec.energy.epoch_kwh(full_s, rho) / G_PER_KG

    def _upcoming_means(self, forecast: SourcedForecast, offsets: Sequence[float],
                        full_s: float, rho: float) -> FloatArray:
        slots = self._epoch_slots(full_s, rho)
        return epoch_means(forecast.g_per_kwh, np.asarray(offsets, dtype=float), slots)

    def _rho(self, index: int, done: Sequence[EpochDone], forecast: SourcedForecast,
             offsets: Sequence[float], full_s: float) -> float:
        spec, kind = self.spec, self.spec.kind
        if kind == RhoPolicyKind.FIXED:
            return float(spec.policy["rho"])
        if kind == RhoPolicyKind.SCHEDULE:
            return float(spec.policy["rhos"][index])
        bounds = spec.bounds
        reference = forecast.reference()
        live = forecast.live.carbon_intensity_g_per_kwh
        upcoming = self._upcoming_means(forecast, offsets[1:], full_s, bounds.rho_max)
        if spec.budget_kg is not None:
            return self._budget_rho(done, live, upcoming, reference, full_s)
        q_now = float(quantile_rank(reference, live))
        if spec.policy.get("mapping") == "quantile":
            return float(quantile_rho(q_now, bounds))
        used = sum(d.rho for d in done)
        remaining_mean = remaining_mean_rho(spec.n_epochs, index, self._typical_rho(index), used)
        q_next = np.atleast_1d(quantile_rank(reference, upcoming)) if upcoming.size else np.empty(0)
        return mean_preserving_rho(q_now, q_next, remaining_mean, bounds, self.gain)

    def _budget_rho(self, done: Sequence[EpochDone], live: float, upcoming: FloatArray,
                    reference: FloatArray, full_s: float) -> float:
        spec = self.spec
        budget = spec.budget_kg
        assert budget is not None  # only called for budget policies
        intensities = np.concatenate(([live], upcoming))
        spent = sum(d.kg_co2 or 0.0 for d in done)
        # The fixed part of every remaining epoch is paid whatever rho is: take it off first.
        fixed_kg = float(np.sum(spec.energy.fixed_kwh() * intensities)) / G_PER_KG
        # The reserve kept for the later epochs at rho_min: their expected intensity with a
        # margin for the forecast's error (the submission check's standard, times SAFETY_FACTOR).
        pessimistic = float(np.max(intensities)) * SAFETY_FACTOR
        q = np.atleast_1d(quantile_rank(reference, intensities))
        return budget_rho(intensities, q, spec.energy.per_rho_kwh(full_s),
                          budget - spent - fixed_kg, pessimistic, spec.bounds)

    def _decision(self, run_now: bool, start: datetime, rho: float | None,
                  forecast: SourcedForecast, offsets: Sequence[float], full_s: float,
                  done: Sequence[EpochDone], reason: str) -> Decision:
        planned = [rho if rho is not None else self._typical_rho(len(done))]
        planned += [self._typical_rho(len(done) + 1 + i) for i in range(len(offsets) - 1)]
        energy = self.spec.energy
        kg = 0.0
        means = []
        for offset, planned_rho in zip(offsets, planned, strict=True):
            slots = self._epoch_slots(full_s, planned_rho)
            mean = float(epoch_means(forecast.g_per_kwh, np.asarray([offset]), slots)[0])
            means.append(mean)
            kg += energy.epoch_kwh(full_s, planned_rho) * mean / G_PER_KG
        span = int(math.ceil(max(o for o in offsets) + self._epoch_slots(full_s, max(planned))))
        return Decision(run_now, start, rho, forecast.live, means[0], kg, reason,
                        forecast.source_hours(0, max(1, span)), forecast.notes,
                        full_epoch_s=full_s, energy=energy)

    def _typical_rho(self, index: int) -> float:
        """The rho an epoch not yet decided is expected to take."""
        spec = self.spec
        if spec.kind == RhoPolicyKind.FIXED:
            return float(spec.policy["rho"])
        if spec.kind == RhoPolicyKind.SCHEDULE:
            rhos = spec.policy["rhos"]
            return float(rhos[min(index, len(rhos) - 1)])
        return spec.rho_target

    # -- at submission -----------------------------------------------------------------------
    def check_budget(self, now: datetime) -> BudgetCheck:
        """The cheapest feasible schedule of the whole job; raises BudgetInfeasibleError naming
        its CO2 when the policy's budget is below it."""
        spec = self.spec
        rho = spec.bounds.rho_min
        full_s = spec.full_epoch_s
        forecast = self.forecaster.forecast(now, self._horizon(now, full_s, spec.n_epochs))
        slots = self._epoch_slots(full_s, rho)
        offsets: list[float] = [i * slots for i in range(spec.n_epochs)]
        if spec.deadline is not None:
            last_end = (spec.deadline - forecast.start).total_seconds() / SLOT_S
            try:
                offsets = [float(s) for s in plan_epoch_starts(forecast.g_per_kwh, slots,
                                                               spec.n_epochs, last_end)]
            except WindowError:
                pass
        means = epoch_means(forecast.g_per_kwh, np.asarray(offsets), slots)
        minimum = float(np.sum(spec.energy.epoch_kwh(full_s, rho) * means)) / G_PER_KG
        check = BudgetCheck(minimum, rho, tuple(forecast.start + timedelta(seconds=o * SLOT_S)
                                                for o in offsets),
                            forecast.source_hours(0, int(math.ceil(offsets[-1] + slots))))
        budget = spec.budget_kg
        if budget is not None and minimum > budget:
            raise BudgetInfeasibleError(budget, minimum, rho)
        return check


__all__ = ["BudgetCheck", "BudgetExhaustedError", "Decision", "EpochDone",
           "JobSpec", "Planner"]
