"""FLOPs counting: PyTorch's `FlopCounterMode` plus the formulas it lacks.

Every FLOPs figure in the project (the profile, the executed FLOPs a training loop reports, the
dashboard's "FLOPs saved") comes from the formulas registered here, so that a prediction and a
measurement always count the same things.

NB: like `torch.utils.flop_counter`, only matrix products are counted (mm, addmm, bmm, baddbmm,
convolutions and the fused attention kernels, each 2 FLOPs per multiply-add). Element-wise work
(norms, activations, softmax, the optimizer) is not counted; it is memory-bound and a small share
of a transformer step's arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

import torch
from torch.utils.flop_counter import (
    FlopCounterMode,
    flop_registry,
    sdpa_backward_flop_count,
    sdpa_flop_count,
    shape_wrapper,
)

aten = torch.ops.aten
T = TypeVar("T")


def _sdpa_cpu_flop(query_shape, key_shape, value_shape, *args: Any, out_shape=None, **kwargs: Any) -> int:
    # q: [b, h, s_q, d] @ k: [b, h, d, s_k], then scores: [b, h, s_q, s_k] @ v: [b, h, s_k, d_v]
    # NB: like PyTorch's own sdpa formula, the causal mask's skipped half is still counted.
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _sdpa_cpu_backward_flop(
    grad_out_shape, query_shape, key_shape, value_shape, *args: Any, out_shape=None, **kwargs: Any
) -> int:
    # Recompute the scores, then grads through scores @ v (2 bmm) and q @ k^T (2 bmm).
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


#: Formulas PyTorch's FlopCounterMode does not register: the CPU flash-attention kernels that
#: `scaled_dot_product_attention` picks on CPU. Without them attention costs nothing on CPU.
EXTRA_FLOP_FORMULAS: dict[Any, Callable[..., int]] = {
    aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flop,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _sdpa_cpu_backward_flop,
}


def flop_counter() -> FlopCounterMode:
    """A `FlopCounterMode` (no printing) that also counts the kernels in EXTRA_FLOP_FORMULAS."""
    return FlopCounterMode(display=False, custom_mapping=EXTRA_FLOP_FORMULAS)


def count_step_flops(fn: Callable[[], T]) -> tuple[T, int]:
    """Run `fn()` and return (its result, the FLOPs it executed as counted by `flop_counter()`)."""
    with flop_counter() as counter:
        result = fn()
    return result, counter.get_total_flops()


@cache
def _registry() -> dict[Any, Callable[..., int]]:
    return {**flop_registry, **{k: shape_wrapper(v) for k, v in EXTRA_FLOP_FORMULAS.items()}}


def op_flops(func: Any, args: tuple, kwargs: dict, out: Any) -> int:
    """FLOPs of one executed aten op (`func` an OpOverload), as `flop_counter()` would count it."""
    formula = _registry().get(func.overloadpacket)
    if formula is None:
        return 0
    return int(formula(*args, **kwargs, out_val=out))


def is_counted(func: Any) -> bool:
    """Whether `func` (an OpOverload) has a FLOPs formula at all."""
    return func.overloadpacket in _registry()
