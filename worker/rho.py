"""The rho of each epoch of a job, asked from the scheduler at that epoch's start.

- ``{"type": "fixed", "rho"}`` and ``{"type": "schedule", "rhos"}`` are used as given;
- ``{"type": "carbon-aware", "rho_min", "rho_max", ...}`` asks `CarbonAwareRhoSchedule` with the
  live intensity from the configured provider chain.
Every schedule also reports the live carbon reading (intensity, source) that the epoch's energy
is charged at, and the provider-fallback event when the chain had to skip a provider. A resumed
job restores the rho of its finished epochs first, so it keeps its decisions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from service.scheduler import (
    CarbonAwareRhoSchedule,
    CarbonReading,
    ChainOutlook,
    ExplicitRhoSchedule,
    FallbackEvent,
    FixedRhoSchedule,
    RhoBounds,
    RhoSchedule,
    SchedulerError,
    build_chain,
)

log = logging.getLogger("worker.rho")


@dataclass(frozen=True)
class EpochDecision:
    rho: float
    reading: CarbonReading | None
    fallback: FallbackEvent | None


class JobRho:
    """Callable ``epoch -> rho`` for the core's Trainer, remembering each epoch's decision."""

    def __init__(self, policy: Mapping[str, Any], n_epochs: int, epoch_hours: float = 1.0,
                 outlook: Any = None) -> None:
        self.outlook = outlook if outlook is not None else ChainOutlook(build_chain())
        self.schedule: RhoSchedule = _schedule(policy, n_epochs, self.outlook, epoch_hours)
        self.decisions: dict[int, EpochDecision] = {}

    def restore(self, rho_by_epoch: Mapping[int, float]) -> None:
        if rho_by_epoch:
            self.schedule.restore(rho_by_epoch)  # type: ignore[attr-defined]

    def decide(self, epoch: int) -> EpochDecision:
        """The epoch's decision (asked once; later calls return the same one)."""
        if epoch not in self.decisions:
            rho, reading = self.schedule.rho_for_epoch(epoch, datetime.now(UTC))
            event = getattr(self.schedule, "last_event", None)
            self.decisions[epoch] = EpochDecision(float(rho), reading, event)
        return self.decisions[epoch]

    def __call__(self, epoch: int) -> float:
        return self.decide(epoch).rho


def _schedule(policy: Mapping[str, Any], n_epochs: int, outlook: Any,
              epoch_hours: float) -> RhoSchedule:
    kind = policy.get("type")
    if kind == "fixed":
        return FixedRhoSchedule(float(policy["rho"]), n_epochs, outlook, epoch_hours)
    if kind == "schedule":
        return ExplicitRhoSchedule([float(r) for r in policy["rhos"]], outlook, epoch_hours)
    if kind == "carbon-aware":
        bounds = RhoBounds(float(policy["rho_min"]), float(policy["rho_max"]))
        return CarbonAwareRhoSchedule(bounds, n_epochs, outlook, epoch_hours, rho_target=None)
    raise SchedulerError(f"rho_policy.type {kind!r} is not fixed, schedule or carbon-aware")
