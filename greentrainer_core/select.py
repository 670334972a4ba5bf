"""Tensor selection (paper section 3.3): the most important tensors within a FLOPs budget.

    maximise  sum_{k in S} I[k]
    subject to  T_fp + sum_{k in S} t_dw[k] + dy_to[deepest(S)] <= rho * T_full     (eq. 5, 13)

The activation-gradient cost depends on the deepest selected tensor alone, so for each candidate
deepest tensor K the rest is a 0/1 knapsack over t_dw of the tensors above K. Building that
knapsack once, output first, and querying it at every K solves the problem exactly in
O(N * T_q) time and memory (T_q = `resolution` budget units), against the paper's O(N^2 * T_q).

Costs are rounded up to units of T_bp / T_q (dy_to once per candidate, never accumulated), so a
returned selection never exceeds the budget. The budget the optimum leaves (the rounding's units,
or room that no positive tensor needs) is then filled greedily with exact costs: first positive
tensors by importance per FLOP, then the others by importance, above or below the deepest one
(a deeper one pays its extra activation-gradient cost too). A tensor with importance <= 0 is not
worth a FLOP of the budget on its own, but the user pays for rho either way, and training it
costs no quality (with the ``"adam"`` importance a score of 0 means a zero gradient on the probe
batches, not a harmful tensor).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from greentrainer_core.errors import InfeasibleBudget, SelectionError
from greentrainer_core.profile import ModelProfile


@dataclass(frozen=True)
class Selection:
    """A set of tensors to train, output first."""

    names: list[str]
    predicted_flops: float  # one training step with exactly `names` trainable (exact when traced)
    objective: float  # summed positive importance of `names` (what the selector maximises)
    rho: float
    budget_flops: float  # rho * full fine-tuning step FLOPs

    @property
    def predicted_rho(self) -> float:
        return self.predicted_flops / self.budget_flops * self.rho if self.budget_flops else 0.0


def _importance_vector(profile: ModelProfile, importance: Mapping[str, float]) -> np.ndarray:
    values = np.zeros(len(profile), dtype=np.float64)
    names = list(importance)
    canonical = profile.canonical(names, what="importance map")
    index = {name: k for k, name in enumerate(profile.names)}
    for original, name in zip(names, canonical):
        value = float(importance[original])
        if not math.isfinite(value):
            raise SelectionError(f"importance of {original!r} is not a finite number ({value})")
        values[index[name]] = value
    return values


def check_rho(rho: float) -> float:
    """rho as a float in (0, 1]; raises SelectionError naming rho otherwise."""
    try:
        value = float(rho)
    except (TypeError, ValueError):
        raise SelectionError(f"rho must be a number in (0, 1], got {rho!r}") from None
    if not (0.0 < value <= 1.0):
        raise SelectionError(f"rho must be in (0, 1], got {rho!r}")
    return value


def select_tensors(
    profile: ModelProfile,
    importance: Mapping[str, float],
    rho: float,
    resolution: int = 10_000,
) -> Selection:
    """Choose the tensors that maximise summed importance within rho x full-step FLOPs.

    `importance` maps tensor names (as in `profile.names`; missing ones count as 0) to scores;
    tensors with importance <= 0 only fill budget the positive ones leave. `resolution` is the number of units the
    full backward pass is divided into (more: closer to the optimum, slower).
    Raises SelectionError for rho outside (0, 1], unknown names, non-finite scores, or when no
    tensor has positive importance; InfeasibleBudget (naming the minimum rho) when rho is below
    the cheapest feasible step.
    """
    rho = check_rho(rho)
    if not isinstance(resolution, int) or resolution < 1:
        raise SelectionError(f"resolution must be a positive integer, got {resolution!r}")
    gain = _importance_vector(profile, importance)
    if profile.min_feasible_rho > rho * (1 + 1e-12):
        raise InfeasibleBudget(rho, profile.min_feasible_rho)
    if not (gain > 0).any():
        raise SelectionError("no tensor has positive importance: there is nothing worth training")

    budget = rho * profile.full_flops
    names = profile.names
    positive = np.flatnonzero(gain > 0)
    if profile.predict_linear([names[k] for k in positive]) <= budget:  # all worth training fits
        return _selection(profile, gain, _fill(profile, gain, list(positive), budget), rho, budget)
    t_bp = max(profile.backward_flops, 1.0)
    scale = resolution / t_bp
    capacity = math.floor((budget - profile.forward_flops) * scale * (1 + 1e-12))
    w = np.ceil(profile.t_dw * scale).astype(np.int64)
    d = np.ceil(profile.dy_to * scale).astype(np.int64)

    knap = np.zeros(capacity + 1)  # knap[c]: best importance above the current tensor within c units
    took: list[NDArray[np.bool_] | Literal[True] | None] = []  # took[k][c]: tensor k is in the solution behind knap[c]
    best = (-math.inf, -1, -1)  # (objective, deepest tensor, capacity left for those above it)
    for k in range(len(profile)):
        limit = capacity - d[k]  # d is non-decreasing: deeper candidates never need more
        if limit < 0:
            break
        knap = knap[: limit + 1]
        if gain[k] > 0 and w[k] <= limit and gain[k] + knap[limit - w[k]] > best[0]:
            best = (gain[k] + knap[limit - w[k]], k, limit - w[k])
        row: NDArray[np.bool_] | Literal[True] | None = None
        if gain[k] > 0 and w[k] == 0:
            knap = knap + gain[k]
            row = True  # free: taken at every capacity
        elif gain[k] > 0 and w[k] <= limit:
            shifted = knap[: limit + 1 - w[k]] + gain[k]
            row = np.zeros(limit + 1, dtype=bool)
            row[w[k] :] = shifted > knap[w[k] :]
            knap = knap.copy()
            knap[w[k] :] = np.maximum(knap[w[k] :], shifted)
        took.append(row)
    objective, deepest, left = best
    if deepest < 0:
        raise InfeasibleBudget(rho, profile.min_feasible_rho)

    chosen = [deepest]
    for j in range(deepest - 1, -1, -1):
        row = took[j]
        if row is True or (row is not None and row[left]):
            chosen.append(j)
            left -= w[j]
    return _selection(profile, gain, _fill(profile, gain, chosen, budget), rho, budget)


def _selection(profile: ModelProfile, gain: np.ndarray, chosen: list[int], rho: float, budget: float) -> Selection:
    chosen = sorted(int(k) for k in chosen)
    names = [profile.names[k] for k in chosen]
    return Selection(
        names=names,
        predicted_flops=profile.predict(names),
        objective=float(np.clip(gain[chosen], 0.0, None).sum()),
        rho=rho,
        budget_flops=budget,
    )


def _fill(profile: ModelProfile, gain: np.ndarray, chosen: list[int], budget: float) -> list[int]:
    """Add tensors while the exact (unrounded) cost still fits: positive ones by importance per FLOP
    first, then the rest by importance; a tensor deeper than the deepest chosen one also pays
    the activation gradients down to it."""
    deepest = max(chosen)
    used = profile.forward_flops + profile.t_dw[chosen].sum() + profile.dy_to[deepest]
    taken = set(chosen)
    rest = [j for j in range(len(profile)) if j not in taken]
    positive = sorted((j for j in rest if gain[j] > 0),
                      key=lambda j: gain[j] / max(profile.t_dw[j], 1e-300), reverse=True)
    others = sorted((j for j in rest if gain[j] <= 0), key=lambda j: gain[j], reverse=True)
    for j in positive + others:
        extra = profile.t_dw[j] + max(0.0, profile.dy_to[j] - profile.dy_to[deepest])
        if used + extra <= budget:
            used += extra
            deepest = max(deepest, j)
            chosen.append(j)
    return chosen
