"""The probing step (paper 3.2): exact restore of weights and optimizer state, the eq. 10 formula,
and early stopping of the probing backward."""

import pytest
import torch

from greentrainer_core.data import SummaryRow, collate, tokenize_rows
from greentrainer_core.errors import GreenTrainerError
from greentrainer_core.flops import count_step_flops
from greentrainer_core.importance import tensor_importance
from tests.core.tiny import ROWS, tiny_llama, tiny_tokenizer


def _batch():
    tok = tiny_tokenizer()
    return collate(
        tokenize_rows([SummaryRow(i, s, t) for i, (s, t) in enumerate(ROWS[:4])], tok),
        tok.pad_token_id,
    )


def _loss(model):
    return lambda batch: model(**batch).loss


def _adamw_with_history(model, steps=2):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    for _ in range(steps):  # real state (moments, step counts) for the layers' tensors only
        for n, p in model.named_parameters():
            p.requires_grad_("layers.1" in n)
        model(**_batch()).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    for p in model.parameters():
        p.requires_grad_(True)
    return optimizer


def test_probe_restores_weights_and_optimizer_state_bit_exactly():
    model = tiny_llama()
    optimizer = _adamw_with_history(model)
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    state = {id(p): {k: v.clone() for k, v in s.items()} for p, s in optimizer.state.items()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    importance = tensor_importance(model, optimizer, [_batch(), _batch()], _loss(model))
    assert set(importance) == set(weights)
    assert max(abs(v) for v in importance.values()) == 1.0
    for n, p in model.named_parameters():
        assert torch.equal(p, weights[n]), n
        assert p.grad is None and p.requires_grad == flags[n]
    assert {id(p) for p in optimizer.state if optimizer.state[p]} == set(state)  # no state created
    for p, s in optimizer.state.items():
        for k, v in s.items():
            assert torch.equal(v, state[id(p)][k]), k


def test_importance_is_minus_update_times_gradient_at_w_t():
    model = tiny_llama()
    lr = 0.5
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    batch = _batch()
    model(**batch).loss.backward()
    raw = {
        n: lr * float((p.grad.double() ** 2).sum()) for n, p in model.named_parameters()
    }  # dw = -lr g
    model.zero_grad(set_to_none=True)
    importance = tensor_importance(model, optimizer, [batch], _loss(model), metric="optimizer")
    scale = max(raw.values())
    for n, v in raw.items():
        assert abs(importance[n] - v / scale) < 1e-4, n


def test_probing_backward_stops_at_the_deepest_probed_tensor():
    model = tiny_llama()
    optimizer = torch.optim.AdamW(model.parameters())
    names = [n for n, _ in model.named_parameters()]
    top = [n for n in names if "layers.1" in n or "lm_head" in n or n == "model.norm.weight"]
    _, flops_top = count_step_flops(
        lambda: tensor_importance(model, optimizer, [_batch()], _loss(model), names=top)
    )
    _, flops_all = count_step_flops(
        lambda: tensor_importance(model, optimizer, [_batch()], _loss(model))
    )
    importance = tensor_importance(model, optimizer, [_batch()], _loss(model), names=top)
    assert set(importance) == set(top)
    assert flops_top < flops_all


def test_default_importance_does_not_depend_on_the_optimizer_state():
    # At a re-selection the training optimizer holds moments for the tensors it trained (here
    # layers.1) and none for the others. The importance must rate every tensor as a fresh optimizer
    # would, or the re-selection drifts towards the untrained tensors (their probe step is a full
    # sign step while the trained ones get damped Adam steps).
    model = tiny_llama()
    trained = _adamw_with_history(model, steps=5)
    fresh = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    batch = _batch()
    live = tensor_importance(model, trained, [batch], _loss(model))
    reference = tensor_importance(model, fresh, [batch], _loss(model), metric="optimizer")
    for name, value in reference.items():
        assert abs(live[name] - value) < 1e-3, name
    # the live-state probe (the old behaviour) is what differs, on the trained tensors
    drift = tensor_importance(model, trained, [batch], _loss(model), metric="optimizer")
    assert max(abs(drift[n] - reference[n]) for n in reference if "layers.1" in n) > 0.05


def test_fresh_adam_importance_is_the_l1_norm_of_the_gradient_without_weight_decay():
    model = tiny_llama()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0, eps=1e-12)
    batch = _batch()
    model(**batch).loss.backward()
    raw = {n: float(p.grad.double().abs().sum()) for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    importance = tensor_importance(model, optimizer, [batch], _loss(model))
    scale = max(raw.values())
    for n, v in raw.items():
        assert abs(importance[n] - v / scale) < 1e-4, n


def test_an_unknown_metric_is_refused_by_name():
    model = tiny_llama()
    with pytest.raises(GreenTrainerError, match="metric 'fisher'"):
        tensor_importance(model, torch.optim.AdamW(model.parameters()), [_batch()], _loss(model),
                          metric="fisher")
