"""Errors raised by greentrainer_core.

    GreenTrainerError
    ├── ProfilingError       the model cannot be profiled (no trainable tensors, unsupported inputs)
    ├── SelectionError       a selection or importance map names unknown tensors, or rho is invalid
    │   └── InfeasibleBudget rho is below the cheapest feasible step (carries the minimum feasible rho)
    ├── ModelLoadError       a model cannot be found or loaded offline
    ├── DataError            a data file is missing, empty, malformed or has unusable rows
    └── TrainingConfigError  a training option (method, epochs, rho schedule, ...) is invalid
"""

from __future__ import annotations


class GreenTrainerError(Exception):
    """Base class of every error this library raises on purpose."""


class ProfilingError(GreenTrainerError):
    pass


class SelectionError(GreenTrainerError, ValueError):
    pass


class InfeasibleBudget(SelectionError):
    def __init__(self, rho: float, min_feasible_rho: float) -> None:
        self.rho = rho
        self.min_feasible_rho = min_feasible_rho
        super().__init__(
            f"rho={rho:g} is below the cheapest feasible training step: the forward pass plus the "
            f"cheapest single tensor need rho >= {min_feasible_rho:.4f}"
        )


class ModelLoadError(GreenTrainerError):
    pass


class DataError(GreenTrainerError, ValueError):
    pass


class TrainingConfigError(GreenTrainerError, ValueError):
    """A training option is invalid (the message names the option); raised before any work starts."""
