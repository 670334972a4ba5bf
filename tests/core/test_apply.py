"""apply_selection trains exactly the selected tensors and leaves the rest bit-identical."""

import pytest
import torch

from greentrainer_core import SelectionError, apply_selection
from tests.core.tiny_models import batch, build


def test_only_selected_tensors_require_grad_and_receive_gradients():
    model = build("llama")
    chosen = ["model.layers.1.self_attn.q_proj.weight", "model.norm.weight"]
    assert apply_selection(model, chosen) == ["model.layers.1.self_attn.q_proj.weight", "model.norm.weight"]
    model(**batch(model, 2, 8)).loss.backward()
    for name, param in model.named_parameters():
        assert param.requires_grad == (name in chosen)
        assert (param.grad is not None) == (name in chosen)


def test_frozen_weights_are_bit_identical_after_an_optimizer_step():
    model = build("gpt2")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    apply_selection(model, ["transformer.h.1.mlp.c_fc.weight"])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model(**batch(model, 2, 8)).loss.backward()
    optimizer.step()
    for name, param in model.named_parameters():
        changed = not torch.equal(param.detach(), before[name])
        assert changed == (name == "transformer.h.1.mlp.c_fc.weight"), name


def test_backprop_stops_at_the_deepest_selected_tensor():
    model = build("llama")
    apply_selection(model, ["model.layers.1.mlp.down_proj.weight"])
    hidden = {}
    model.model.layers[0].register_forward_hook(lambda m, i, o: hidden.setdefault("out", o))
    model(**batch(model, 2, 8))
    out = hidden["out"][0] if isinstance(hidden["out"], tuple) else hidden["out"]
    assert not out.requires_grad  # nothing below layer 1 is part of the backward graph


def test_unknown_names_are_an_error_naming_them():
    model = build("llama")
    with pytest.raises(SelectionError, match="'model.layers.9.mlp.up_proj.weight'"):
        apply_selection(model, ["model.norm.weight", "model.layers.9.mlp.up_proj.weight"])
    # Nothing was changed by the failed call.
    assert all(p.requires_grad for p in model.parameters())
