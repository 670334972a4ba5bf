"""The selector returns the optimum within the budget, and refuses bad input with a clear message."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from greentrainer_core import InfeasibleBudget, ModelProfile, SelectionError, TensorCost, select_tensors


def _random_profile(rng: np.random.Generator, n: int, integer: bool) -> ModelProfile:
    draw = (lambda: float(rng.integers(0, 50))) if integer else (lambda: float(rng.uniform(0, 50)))
    tensors = [TensorCost(f"t{k}", draw() if rng.random() < 0.8 else 0.0, draw()) for k in range(n)]
    return ModelProfile(tensors, forward_flops=float(rng.integers(100, 400)))


def _brute_force(prof: ModelProfile, gain: np.ndarray, budget: float) -> float:
    best = 0.0
    positive = [k for k in range(len(prof)) if gain[k] > 0]
    for r in range(1, len(positive) + 1):
        for subset in itertools.combinations(positive, r):
            cost = prof.forward_flops + prof.t_dw[list(subset)].sum() + prof.dy_to[max(subset)]
            if cost <= budget:
                best = max(best, gain[list(subset)].sum())
    return best


@pytest.mark.parametrize("seed", range(40))
def test_optimum_matches_brute_force_on_integer_instances(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 15))
    prof = _random_profile(rng, n, integer=True)
    gain = rng.normal(size=n)
    importance = {t.name: float(g) for t, g in zip(prof.tensors, gain)}
    rho = float(rng.uniform(prof.min_feasible_rho, 1.0))
    # With one unit per FLOP the rounding is exact, so the DP must hit the true optimum.
    resolution = int(prof.backward_flops)
    if not (gain > 0).any():
        with pytest.raises(SelectionError, match="positive importance"):
            select_tensors(prof, importance, rho, resolution)
        return
    try:
        sel = select_tensors(prof, importance, rho, resolution)
    except InfeasibleBudget:
        assert _brute_force(prof, gain, rho * prof.full_flops) == 0.0
        return
    assert math.isclose(sel.objective, _brute_force(prof, gain, rho * prof.full_flops), abs_tol=1e-9)
    assert sel.predicted_flops <= rho * prof.full_flops
    assert prof.predict_linear(sel.names) <= rho * prof.full_flops


@pytest.mark.parametrize("seed", range(40))
def test_never_exceeds_the_budget_and_is_near_optimal_with_rounding(seed):
    rng = np.random.default_rng(1000 + seed)
    n = int(rng.integers(2, 16))
    prof = _random_profile(rng, n, integer=False)
    gain = np.abs(rng.normal(size=n))
    importance = {t.name: float(g) for t, g in zip(prof.tensors, gain)}
    rho = float(rng.uniform(prof.min_feasible_rho * 1.05, 1.0))
    sel = select_tensors(prof, importance, rho, resolution=1000)
    assert sel.predicted_flops <= rho * prof.full_flops
    assert prof.predict_linear(sel.names) <= rho * prof.full_flops
    # Rounding up costs at most one unit per selected tensor plus one for the chain.
    unit = prof.backward_flops / 1000
    shrunk = rho * prof.full_flops - (n + 1) * unit
    assert sel.objective >= _brute_force(prof, gain, shrunk) - 1e-9


def test_the_paper_public_code_pitfalls_are_avoided():
    # The bottom tensor is selectable, and tiny tensors are not free just because they are small.
    prof = ModelProfile([TensorCost("top", 1.0, 0.0), TensorCost("bottom", 1.0, 1.0)], forward_flops=1.0)
    sel = select_tensors(prof, {"bottom": 1.0, "top": -1.0}, rho=0.75)
    assert sel.names == ["bottom"]
    assert sel.predicted_flops == 1 + 1 + 1


def test_budget_left_by_the_positive_tensors_is_filled_with_the_others_best_first():
    prof = ModelProfile([TensorCost(f"t{k}", 1.0, 1.0) for k in range(4)], forward_flops=4.0)
    # full step 4 + 4 + 3 = 11; rho 9/11: t2 (4 + 1 + 2 = 7) leaves 2, enough for t0 or t3 (not both)
    sel = select_tensors(prof, {"t0": 0.0, "t1": -2.0, "t2": 3.0, "t3": 0.0}, rho=9 / 11)
    assert sel.names in (["t0", "t2"], ["t2", "t3"])
    assert sel.objective == 3.0
    everything = select_tensors(prof, {"t0": 0.0, "t1": -2.0, "t2": 3.0, "t3": 0.0}, rho=1.0)
    assert everything.names == ["t0", "t1", "t2", "t3"]


def test_rounding_leftover_reaches_a_deeper_tensor_with_its_exact_cost():
    # Resolution 6 makes one unit 31.5 / 6 = 5.25 FLOPs: the DP sees "deep" as 2 units + 1 of dy,
    # more than the 2 units the budget holds, and takes "top" alone; the exact cost of "deep"
    # (5.5 + 1 of dy) fits the 6.6 FLOPs that "top" leaves.
    prof = ModelProfile(
        [TensorCost("top", 4.0, 0.0), TensorCost("deep", 5.5, 1.0), TensorCost("deeper", 20.0, 2.0)],
        forward_flops=10.0,
    )
    budget_rho = 20.6 / prof.full_flops
    sel = select_tensors(prof, {"top": 1.0, "deep": 0.5, "deeper": 0.5}, rho=budget_rho, resolution=6)
    assert sel.names == ["top", "deep"]
    assert sel.predicted_flops <= budget_rho * prof.full_flops * (1 + 1e-12)


def test_rho_below_the_cheapest_step_names_the_minimum_rho():
    prof = ModelProfile([TensorCost("a", 10.0, 0.0), TensorCost("b", 5.0, 5.0)], forward_flops=10.0)
    assert prof.min_feasible_rho == pytest.approx(20 / 30)
    with pytest.raises(InfeasibleBudget, match=r"rho >= 0\.6667") as info:
        select_tensors(prof, {"a": 1.0, "b": 1.0}, rho=0.5)
    assert info.value.min_feasible_rho == pytest.approx(2 / 3)


@pytest.mark.parametrize("rho", [0, -0.1, 1.01, float("nan"), "high", None])
def test_rho_outside_zero_one_is_an_error(rho):
    prof = ModelProfile([TensorCost("a", 1.0, 1.0)], forward_flops=1.0)
    with pytest.raises(SelectionError, match="rho must be"):
        select_tensors(prof, {"a": 1.0}, rho=rho)


def test_unknown_names_in_the_importance_map_are_an_error():
    prof = ModelProfile([TensorCost("a", 1.0, 1.0)], forward_flops=1.0)
    with pytest.raises(SelectionError, match="importance map.*'ghost'"):
        select_tensors(prof, {"a": 1.0, "ghost": 2.0}, rho=1.0)
    with pytest.raises(SelectionError, match="finite"):
        select_tensors(prof, {"a": float("inf")}, rho=1.0)
    with pytest.raises(SelectionError, match="resolution"):
        select_tensors(prof, {"a": 1.0}, rho=1.0, resolution=0)


def test_rho_one_with_all_positive_selects_everything():
    rng = np.random.default_rng(7)
    prof = _random_profile(rng, 12, integer=False)
    sel = select_tensors(prof, {name: 1.0 for name in prof.names}, rho=1.0)
    assert sel.names == prof.names
    assert sel.predicted_flops == pytest.approx(prof.full_flops)


def test_selection_on_a_traced_profile_is_within_budget_when_executed():
    from greentrainer_core import apply_selection, count_step_flops, profile_model
    from tests.core.tiny_models import batch, build

    model = build("llama")
    prof = profile_model(model, batch_size=2, seq_len=10)
    rng = np.random.default_rng(0)
    importance = {name: float(rng.normal()) for name in prof.names}
    for rho in (0.45, 0.6, 0.8):
        if rho < prof.min_feasible_rho:
            continue
        sel = select_tensors(prof, importance, rho)
        apply_selection(model, sel.names)
        inputs = batch(model, 2, 10)
        _, executed = count_step_flops(lambda: model(**inputs).loss.backward())
        model.zero_grad(set_to_none=True)
        assert executed == sel.predicted_flops <= rho * prof.full_flops
