"""The FLOPs model predicts exactly what PyTorch executes, for every architecture and any selection."""

from __future__ import annotations

import random

import pytest
import torch

from greentrainer_core import (
    ModelProfile,
    ProfilingError,
    SelectionError,
    TensorCost,
    apply_selection,
    count_step_flops,
    profile_model,
)
from tests.core.tiny_models import BUILDERS, batch, build

SEQ, TARGET, BATCH = 10, 6, 2


def _target_len(model):
    return TARGET if model.config.is_encoder_decoder else None


def _executed_flops(model, names, seed):
    apply_selection(model, names)
    inputs = batch(model, BATCH, SEQ, _target_len(model), seed=seed)
    _, flops = count_step_flops(lambda: model(**inputs).loss.backward())
    model.zero_grad(set_to_none=True)
    return flops


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def arch_profile(request):
    model = build(request.param)
    return request.param, model, profile_model(model, batch_size=BATCH, seq_len=SEQ, target_len=_target_len(model))


def test_prediction_equals_counted_flops_for_20_random_selections(arch_profile):
    arch, model, prof = arch_profile
    rng = random.Random(arch)
    for trial in range(20):
        density = rng.choice([0.05, 0.2, 0.5, 0.9])
        names = [n for n in prof.names if rng.random() < density] or [rng.choice(prof.names)]
        assert prof.predict(names) == _executed_flops(model, names, seed=trial), (arch, names)


def test_linear_formula_is_exact_on_closures_and_an_upper_bound_elsewhere(arch_profile):
    arch, model, prof = arch_profile
    rng = random.Random(arch + "linear")
    for depth in (1, len(prof) // 3, len(prof) // 2, len(prof)):
        closure = prof.names[:depth]
        assert prof.predict_linear(closure) == prof.predict(closure) == _executed_flops(model, closure, 0)
    for _ in range(20):
        names = rng.sample(prof.names, rng.randint(1, len(prof)))
        assert prof.predict(names) <= prof.predict_linear(names)


def test_full_step_is_forward_plus_every_tensor(arch_profile):
    arch, model, prof = arch_profile
    assert prof.full_flops == prof.predict(prof.names) == _executed_flops(model, prof.names, 0)
    assert prof.forward_flops == prof.graph.forward_flops
    assert 0 < prof.forward_flops < prof.full_flops
    assert [t.name for t in prof.tensors] == prof.names
    assert set(prof.names) == {n for n, _ in model.named_parameters()}


def test_tensors_are_in_execution_order_output_first():
    model = build("opt")  # OPT registers its final LayerNorm before layer 0
    prof = profile_model(model, batch_size=BATCH, seq_len=SEQ)
    names = prof.names
    assert names.index("model.decoder.final_layer_norm.weight") < names.index("model.decoder.layers.1.fc2.weight")
    assert names.index("model.decoder.layers.1.fc2.weight") < names.index("model.decoder.layers.0.fc2.weight")
    # The input embedding is read first in the forward pass: it is the deepest tensor.
    assert names[-1] in {"model.decoder.embed_tokens.weight", "model.decoder.embed_positions.weight"}


def test_tied_embedding_sits_at_the_bottom_and_forces_full_backprop():
    model = build("llama")
    assert model.lm_head.weight is model.model.embed_tokens.weight
    prof = profile_model(model, batch_size=BATCH, seq_len=SEQ)
    assert prof.names[-1] == "model.embed_tokens.weight"
    embed = prof.tensors[-1]
    assert embed.t_dw > 0  # the output projection's weight gradient
    # Training the tied matrix alone costs the whole activation-gradient chain.
    alone = prof.predict(["model.embed_tokens.weight"])
    assert alone == prof.forward_flops + embed.t_dw + prof.dy_to[-1]
    assert alone == _executed_flops(model, ["lm_head.weight"], 0)  # the alias selects the same tensor


def test_untied_output_embedding_is_at_the_top():
    prof = profile_model(build("qwen2"), batch_size=BATCH, seq_len=SEQ)
    assert prof.names[0] == "lm_head.weight"
    assert prof.tensors[0].t_dy == 0  # nothing to propagate to reach the last op


def test_biases_norms_and_embeddings_are_tensors_like_any_other():
    prof = profile_model(build("opt"), batch_size=BATCH, seq_len=SEQ)
    kinds = {name.rsplit(".", 1)[-1] for name in prof.names}
    assert {"weight", "bias"} <= kinds
    assert "model.decoder.layers.0.self_attn_layer_norm.bias" in prof.names


def test_profile_scales_with_the_batch_shape():
    model = build("gpt2")
    small = profile_model(model, batch_size=1, seq_len=8)
    large = profile_model(model, batch_size=2, seq_len=8)
    assert large.full_flops == 2 * small.full_flops


def test_model_with_no_trainable_tensor_is_an_error():
    model = build("gpt2")
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ProfilingError, match="no trainable tensors"):
        profile_model(model, batch_size=1, seq_len=4)


def test_frozen_tensors_are_left_out_of_the_profile():
    model = build("llama")
    model.model.layers[0].mlp.down_proj.weight.requires_grad_(False)
    prof = profile_model(model, batch_size=1, seq_len=4)
    assert "model.layers.0.mlp.down_proj.weight" not in prof.names
    assert len(prof) == sum(p.requires_grad for p in model.parameters())


def test_profile_from_plain_numbers_uses_the_formula():
    prof = ModelProfile([TensorCost("top", 2.0, 1.0), TensorCost("mid", 3.0, 4.0), TensorCost("bottom", 5.0, 6.0)], 10.0)
    assert prof.full_flops == 10 + (2 + 3 + 5) + (1 + 4 + 6)
    assert prof.predict(["mid"]) == 10 + 3 + (1 + 4)
    assert prof.predict(["top", "bottom"]) == 10 + 2 + 5 + (1 + 4 + 6)
    assert prof.reachable(0.6) == ["top", "mid"]  # 10+2+1=13, 10+3+5=18 <= 0.6*31=18.6 < 10+5+11
    with pytest.raises(SelectionError, match="'nope'"):
        prof.predict(["nope"])


def test_bad_profiles_are_refused():
    with pytest.raises(ProfilingError, match="at least one"):
        ModelProfile([], 1.0)
    with pytest.raises(ProfilingError, match="negative"):
        ModelProfile([TensorCost("a", -1.0, 0.0)], 1.0)
    with pytest.raises(ProfilingError, match="unique"):
        ModelProfile([TensorCost("a", 1.0, 0.0), TensorCost("a", 1.0, 0.0)], 1.0)


def test_profiling_does_not_touch_the_real_model():
    model = build("llama")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    profile_model(model, batch_size=1, seq_len=4)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p, before[n], rtol=0, atol=0)
        assert p.grad is None


def test_grouped_query_attention_counts_every_broadcast_head_in_each_fused_kernel():
    # On CUDA, SmolLM2's attention reaches the fused kernels with 3 key/value heads for 9 query
    # heads; PyTorch before 2.13 rejects that shape, which stopped the profiler on a GPU.
    from torch.utils.flop_counter import sdpa_backward_flop_count, sdpa_flop_count

    from greentrainer_core.flops import EXTRA_FLOP_FORMULAS

    aten = torch.ops.aten
    kernels = [k for k in ("_scaled_dot_product_flash_attention", "_scaled_dot_product_efficient_attention",
                           "_scaled_dot_product_flash_attention_for_cpu") if hasattr(aten, k)]
    assert "_scaled_dot_product_flash_attention_for_cpu" in kernels and len(kernels) >= 2
    q, kv, full = (2, 9, 16, 64), (2, 3, 16, 64), (2, 9, 16, 64)
    for name in kernels:
        forward = EXTRA_FLOP_FORMULAS[getattr(aten, name)]
        backward = EXTRA_FLOP_FORMULAS[getattr(aten, name + "_backward")]
        assert forward(q, kv, kv) == sdpa_flop_count(q, full, full) == 2 * 2 * (2 * 9 * 16 * 16 * 64)
        assert backward(q, q, kv, kv) == sdpa_backward_flop_count(q, q, full, full)
    with pytest.raises(ValueError, match="9 query heads are not a multiple of 4"):
        EXTRA_FLOP_FORMULAS[aten._scaled_dot_product_flash_attention](q, (2, 4, 16, 64), (2, 4, 16, 64))


def test_a_grouped_query_attention_call_counts_as_its_broadcast_equivalent():
    from greentrainer_core.flops import flop_counter

    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 4, 8, 16, generator=g)
    k, v = torch.randn(1, 2, 8, 16, generator=g), torch.randn(1, 2, 8, 16, generator=g)
    counts = []
    for key, value, gqa in ((k, v, True), (k.repeat_interleave(2, 1), v.repeat_interleave(2, 1), False)):
        with flop_counter() as counter:
            torch.nn.functional.scaled_dot_product_attention(q, key, value, is_causal=True, enable_gqa=gqa)
        counts.append(counter.get_total_flops())
    assert counts[0] == counts[1] == 2 * 2 * 4 * 8 * 8 * 16
