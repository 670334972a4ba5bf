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

import errno


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


def disk_full_cause(exc: BaseException | None) -> OSError | None:
    """The full-disk error (errno ENOSPC) that ``exc`` is or was raised from, else None. Libraries
    wrap it: torch.save reports a failed write as a RuntimeError whose context is the OSError."""
    for _ in range(10):  # a bounded walk: exception chains can be cyclic
        if exc is None:
            return None
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None
