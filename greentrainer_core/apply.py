"""Applying a selection: make autograd compute exactly the selected weight gradients."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from greentrainer_core.errors import SelectionError


def apply_selection(model: torch.nn.Module, names: Iterable[str]) -> list[str]:
    """Set `requires_grad` on exactly the parameters in `names` and clear it everywhere else.

    Autograd then skips every unselected weight gradient and stops at the deepest selected
    tensor (nothing below it requires grad). Names are those of `model.named_parameters()`;
    an alias of a tied tensor (e.g. `lm_head.weight` tied to the input embedding) selects
    the shared tensor. Returns the canonical names selected.
    Raises SelectionError naming any unknown parameter.
    """
    wanted = list(names)
    by_name = dict(model.named_parameters(remove_duplicate=False))
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        shown = ", ".join(repr(n) for n in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise SelectionError(f"apply_selection: the model has no parameter named {shown}")
    chosen = {id(by_name[n]) for n in wanted}
    selected = []
    for name, param in model.named_parameters():
        param.requires_grad_(id(param) in chosen)
        if id(param) in chosen:
            selected.append(name)
    return selected
