"""The rho policies a job may choose: the one place their names live (the API's validation, the
dashboard's form and the decision engine, `greentrainer_carbon.planner`, read them).

    fixed          {"type": "fixed", "rho": 0.6}                     one rho for every epoch
    schedule       {"type": "schedule", "rhos": [0.5, 0.7]}          one rho per epoch
    carbon-aware   {"type": "carbon-aware", "rho_min", "rho_max",    rho from the grid's intensity
                    "rho_target", "region", "deadline",              (and a CO2 budget)
                    "co2_budget_kg"}

A fixed or schedule policy may name a deadline too: the job then waits (and pauses between
epochs) for the cleanest hours that still finish by it.
"""

from __future__ import annotations

from enum import StrEnum

#: The product's default rho (a fixed policy): docs/core-training.md says how it was chosen.
DEFAULT_RHO = 0.6


class RhoPolicyKind(StrEnum):
    FIXED = "fixed"
    SCHEDULE = "schedule"
    CARBON_AWARE = "carbon-aware"


__all__ = ["DEFAULT_RHO", "RhoPolicyKind"]
