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
from typing import Any, TypeAlias, TypeVar

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


Shape: TypeAlias = tuple[int, ...]  # a tensor shape as FlopCounterMode passes it (a torch.Size)


def _broadcast_heads(query_shape: Shape, kv_shape: Shape) -> Shape:
    """A key or value shape with as many heads as the query: grouped-query attention (GQA)
    broadcasts each key/value head over its group, and the kernel computes every product."""
    b, h_kv, s, d = kv_shape
    h_q = query_shape[1]
    if h_q % h_kv:
        raise ValueError(f"sdpa: {h_q} query heads are not a multiple of {h_kv} key/value heads")
    return (b, h_q, s, d)


def _sdpa_flop(
    query_shape: Shape, key_shape: Shape, value_shape: Shape, *args: Any, out_shape: Any = None, **kwargs: Any
) -> int:
    # q: [b, h, s_q, d] @ k: [b, h, d, s_k], then scores: [b, h, s_q, s_k] @ v: [b, h, s_k, d_v]
    # NB: like PyTorch's own sdpa formula, the causal mask's skipped half is still counted.
    flops: int = sdpa_flop_count(
        query_shape, _broadcast_heads(query_shape, key_shape), _broadcast_heads(query_shape, value_shape)
    )
    return flops


def _sdpa_backward_flop(
    grad_out_shape: Shape,
    query_shape: Shape,
    key_shape: Shape,
    value_shape: Shape,
    *args: Any,
    out_shape: Any = None,
    **kwargs: Any,
) -> int:
    # Recompute the scores, then grads through scores @ v (2 bmm) and q @ k^T (2 bmm).
    flops: int = sdpa_backward_flop_count(
        grad_out_shape,
        query_shape,
        _broadcast_heads(query_shape, key_shape),
        _broadcast_heads(query_shape, value_shape),
    )
    return flops


_SDPA_KERNELS = (  # (forward, backward) of every fused kernel `scaled_dot_product_attention` picks
    "_scaled_dot_product_flash_attention_for_cpu",  # CPU
    "_scaled_dot_product_flash_attention",  # CUDA
    "_scaled_dot_product_efficient_attention",
    "_scaled_dot_product_cudnn_attention",
)

#: Formulas PyTorch's FlopCounterMode lacks or gets wrong here: the CPU flash-attention kernels
#: (unregistered: without them attention costs nothing on CPU), and grouped-query attention in
#: every fused kernel (PyTorch before 2.13 rejects key/value with fewer heads than the query, and
#: SmolLM2, LLaMA and Qwen2 attend that way on CUDA).
EXTRA_FLOP_FORMULAS: dict[Any, Callable[..., int]] = {}
for _name in _SDPA_KERNELS:
    if hasattr(aten, _name):  # the set of kernels differs between PyTorch builds
        EXTRA_FLOP_FORMULAS[getattr(aten, _name)] = _sdpa_flop
    if hasattr(aten, _name + "_backward"):
        EXTRA_FLOP_FORMULAS[getattr(aten, _name + "_backward")] = _sdpa_backward_flop


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


def op_flops(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> int:
    """FLOPs of one executed aten op (`func` an OpOverload), as `flop_counter()` would count it."""
    formula = _registry().get(func.overloadpacket)
    if formula is None:
        return 0
    return int(formula(*args, **kwargs, out_val=out))


def is_counted(func: Any) -> bool:
    """Whether `func` (an OpOverload) has a FLOPs formula at all."""
    return func.overloadpacket in _registry()
