"""The rho policies a job may choose: the one place their names live (the API's validation, the
dashboard's form and the decision engine, `greentrainer_carbon.planner`, read them).

    fixed          {"type": "fixed", "rho": 0.6}                     one rho for every epoch
    schedule       {"type": "schedule", "rhos": [0.5, 0.7]}          one rho per epoch
    carbon-aware   {"type": "carbon-aware", "rho_min", "rho_max",    rho from the grid's intensity
                    "rho_target", "region", "deadline",              (and a CO2 budget)
                    "co2_budget_kg"}

A fixed or schedule policy may name a deadline too: the job then waits (and pauses between
epochs) for the cleanest hours that still finish by it.

The quality floor: no policy takes a rho below ``RHO_FLOOR`` unless it says
``"allow_low_rho": true`` (the API refuses it otherwise, naming the floor). Below it the measured
quality loss against full fine-tuning is large (benchmarks/results/accuracy_asdiv.md and the
figures in `greentrainer_carbon.quality`). A planner choosing rho at run time clamps with
``honour_floor(rho, policy)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

#: The product's default rho (a fixed policy): docs/core-training.md says how it was chosen.
DEFAULT_RHO = 0.7

#: The lowest rho any policy may reach unless the job sets allow_low_rho.
RHO_FLOOR = 0.5


class RhoPolicyKind(StrEnum):
    FIXED = "fixed"
    SCHEDULE = "schedule"
    CARBON_AWARE = "carbon-aware"


def lowest_rho(policy: Mapping[str, Any]) -> float | None:
    """The lowest rho a policy can run an epoch at (None for a policy without one)."""
    kind = policy.get("type")
    values: list[Any]
    if kind == RhoPolicyKind.FIXED:
        values = [policy.get("rho")]
    elif kind == RhoPolicyKind.SCHEDULE:
        values = list(policy.get("rhos") or [])
    elif kind == RhoPolicyKind.CARBON_AWARE:
        values = [policy.get("rho_min")]
    else:
        return None
    numbers = [float(v) for v in values if isinstance(v, int | float)]
    return min(numbers) if numbers else None


def floor_of(policy: Mapping[str, Any], floor: float = RHO_FLOOR) -> float:
    """The floor a policy's epochs honour: ``floor``, or 0 when it sets allow_low_rho."""
    return 0.0 if policy.get("allow_low_rho") else floor


def below_floor(policy: Mapping[str, Any], floor: float = RHO_FLOOR) -> str | None:
    """Why a policy breaks the quality floor (a message naming the field, the floor and the
    override), or None when it honours it."""
    lowest = lowest_rho(policy)
    if lowest is None or lowest >= floor_of(policy, floor):
        return None
    fields = {RhoPolicyKind.FIXED.value: "rho", RhoPolicyKind.SCHEDULE.value: "rhos"}
    field = fields.get(str(policy.get("type")), "rho_min")
    return (f"{field} {lowest:g} is below the quality floor rho {floor:g}: below it fine-tuning "
            f"quality falls well short of full fine-tuning; raise it to {floor:g} or set "
            f"allow_low_rho to true to accept the loss")


def honour_floor(rho: float, policy: Mapping[str, Any], floor: float = RHO_FLOOR) -> float:
    """``rho`` raised to the policy's floor (what a run-time decision must return)."""
    return max(float(rho), floor_of(policy, floor))


__all__ = ["DEFAULT_RHO", "RHO_FLOOR", "RhoPolicyKind", "below_floor", "floor_of", "honour_floor",
           "lowest_rho"]
