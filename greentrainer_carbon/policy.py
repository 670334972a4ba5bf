"""The rho policy: grid carbon intensity -> FLOPs budget rho. The one place this decision lives.

Formulas (q is always the mid-rank empirical CDF of the intensity within the region's own
reference distribution R: its recent past plus its forecast, so a "clean hour" is relative):

    q(c)        = (#{r in R : r < c} + 0.5 * #{r in R : r = c}) / |R|            in [0, 1]
    quantile    : rho(c) = rho_max - q(c) * (rho_max - rho_min)
    mean-pres.  : rho_k  = clip(m_k + g * (rho_max - rho_min) * (qbar_k - q(c_k)), lo_k, hi_k)
                  m_k    = (N * rho_target - sum of rho already used) / (N - k)   (remaining mean)
                  qbar_k = mean of q over epoch k and the forecast of the remaining epochs
                  g      = gain (default 8): g -> infinity is the bang-bang optimum of the linear
                           programme min sum rho_k c_k s.t. mean rho fixed; finite g hedges errors
                  [lo_k, hi_k] = [rho_min, rho_max] narrowed so the later epochs can still
                           reach the target mean (exact mean rho unless the target is unreachable)
    budget      : the same shape around a level L, rho_i(L) = clip(L + s * (qbar - q_i)),
                  L = the largest level whose forecast emissions sum_i rho_i E c_i fit the budget,
                  then capped so that the remaining epochs can still run at rho_min at a
                  pessimistic intensity (reserve): the budget holds unless the grid exceeds it.

Every mapping is monotone: a dirtier reading never gives a larger rho (q is non-decreasing in c).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from greentrainer_carbon.errors import BudgetExhaustedError, BudgetInfeasibleError, PolicyError

G_PER_KG = 1000.0
DEFAULT_GAIN = 8.0
BUDGET_RTOL = 1e-9  # float rounding must not turn an exactly sufficient budget into a refusal


@dataclass(frozen=True)
class RhoBounds:
    rho_min: float
    rho_max: float

    def __post_init__(self) -> None:
        if not 0.0 < self.rho_min <= 1.0:
            raise PolicyError(f"rho_min must be in (0, 1], got {self.rho_min}")
        if not self.rho_min <= self.rho_max <= 1.0:
            raise PolicyError(f"rho_max must be in [rho_min={self.rho_min}, 1], got {self.rho_max}")

    @property
    def spread(self) -> float:
        return self.rho_max - self.rho_min

    def clip(self, rho: float | np.ndarray) -> float | np.ndarray:
        return np.clip(rho, self.rho_min, self.rho_max)


def quantile_rank(
    reference_g_per_kwh: np.ndarray, intensity: float | np.ndarray
) -> float | np.ndarray:
    """Mid-rank empirical CDF of `intensity` in the reference (NaNs ignored).

    Raises PolicyError when the reference has no value.
    """
    ref = np.sort(np.asarray(reference_g_per_kwh, dtype=float))
    ref = ref[~np.isnan(ref)]
    if ref.size == 0:
        raise PolicyError(
            "the reference intensity distribution is empty (no recent or forecast values)"
        )
    below = np.searchsorted(ref, intensity, side="left")
    not_above = np.searchsorted(ref, intensity, side="right")
    q = (below + not_above) / (2.0 * ref.size)
    return float(q) if np.ndim(q) == 0 else q


def quantile_rho(q: float | np.ndarray, bounds: RhoBounds) -> float | np.ndarray:
    """rho_max at the cleanest intensity of the reference (q=0), rho_min at the dirtiest (q=1)."""
    return bounds.rho_max - np.clip(q, 0.0, 1.0) * bounds.spread


def mean_preserving_rho(
    q_now: float,
    q_upcoming: np.ndarray,
    remaining_mean: float,
    bounds: RhoBounds,
    gain: float = DEFAULT_GAIN,
) -> float:
    """rho for this epoch so the job's mean rho stays on target (see module docstring)."""
    if gain < 0:
        raise PolicyError(f"gain must be >= 0, got {gain}")
    upcoming = np.asarray(q_upcoming, dtype=float)
    qbar = float(np.mean(np.concatenate(([q_now], upcoming))))
    rho = remaining_mean + gain * bounds.spread * (qbar - q_now)
    # Keep the target reachable: the later epochs can only add between rho_min and rho_max each.
    remaining_total = remaining_mean * (1 + upcoming.size)
    low = max(bounds.rho_min, remaining_total - upcoming.size * bounds.rho_max)
    high = min(bounds.rho_max, remaining_total - upcoming.size * bounds.rho_min)
    return float(np.clip(rho, low, max(low, high)))


def remaining_mean_rho(
    n_epochs: int, epoch_index: int, rho_target: float, rho_used: float
) -> float:
    """(N * rho_target - rho used so far) / epochs left."""
    left = n_epochs - epoch_index
    if left <= 0:
        raise PolicyError(f"epoch_index {epoch_index} is past the job's {n_epochs} epochs")
    return (n_epochs * rho_target - rho_used) / left


def minimum_budget_kg(
    n_epochs: int, energy_full_kwh_per_epoch: float, pessimistic_g_per_kwh: float, bounds: RhoBounds
) -> float:
    """CO2 needed to run the epochs at rho_min at the pessimistic intensity."""
    return n_epochs * bounds.rho_min * energy_full_kwh_per_epoch * pessimistic_g_per_kwh / G_PER_KG


def check_budget_feasible(
    budget_kg_co2: float,
    n_epochs: int,
    energy_full_kwh_per_epoch: float,
    pessimistic_g_per_kwh: float,
    bounds: RhoBounds,
) -> None:
    """Submission-time check. Raises BudgetInfeasibleError when even rho_min does not fit."""
    if budget_kg_co2 <= 0:
        raise PolicyError(f"co2_budget_kg must be > 0, got {budget_kg_co2}")
    needed = minimum_budget_kg(n_epochs, energy_full_kwh_per_epoch, pessimistic_g_per_kwh, bounds)
    if needed > budget_kg_co2 * (1 + BUDGET_RTOL):
        raise BudgetInfeasibleError(budget_kg_co2, needed)


def budget_rho(
    intensities_g_per_kwh: np.ndarray,
    q: np.ndarray,
    energy_full_kwh_per_epoch: float,
    remaining_budget_kg: float,
    pessimistic_g_per_kwh: float,
    bounds: RhoBounds,
) -> float:
    """rho for the current epoch (index 0 of the arrays) under a CO2 budget.

    Raises BudgetExhaustedError when even rho_min for every remaining epoch at the pessimistic
    intensity no longer fits the remaining budget (the worker then stops the job).

    `intensities_g_per_kwh[i]` / `q[i]`: expected intensity and its quantile for the current
    (i=0) and each remaining epoch.
    """
    c = np.asarray(intensities_g_per_kwh, dtype=float)
    qs = np.asarray(q, dtype=float)
    n = c.size
    needed = minimum_budget_kg(n, energy_full_kwh_per_epoch, pessimistic_g_per_kwh, bounds)
    if needed > remaining_budget_kg * (1 + BUDGET_RTOL):
        raise BudgetExhaustedError(remaining_budget_kg, needed, n)
    offsets = bounds.spread * (qs.mean() - qs)

    def planned_kg(level: float) -> float:
        return float(
            np.sum(bounds.clip(level + offsets) * energy_full_kwh_per_epoch * c) / G_PER_KG
        )

    low, high = bounds.rho_min - bounds.spread, bounds.rho_max + bounds.spread
    if planned_kg(high) <= remaining_budget_kg:
        level = high
    else:
        for _ in range(60):  # bisection: planned_kg is non-decreasing in the level
            mid = 0.5 * (low + high)
            low, high = (mid, high) if planned_kg(mid) <= remaining_budget_kg else (low, mid)
        level = low
    rho = float(bounds.clip(level + offsets[0]))
    reserve_kg = minimum_budget_kg(n - 1, energy_full_kwh_per_epoch, pessimistic_g_per_kwh, bounds)
    cap = (
        (remaining_budget_kg - reserve_kg)
        * G_PER_KG
        / (energy_full_kwh_per_epoch * pessimistic_g_per_kwh)
    )
    return float(max(bounds.rho_min, min(rho, cap)))
