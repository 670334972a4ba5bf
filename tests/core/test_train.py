"""The selective training loop: per-epoch rho schedule, frozen tensors, optimizer-state policy,
accounting events and checkpoint/resume."""

import pytest
import torch

from greentrainer_core.config import EpochRecord, EpochStart, StepEvent, TrainConfig, rho_for_epoch
from greentrainer_core.data import SummaryRow, tokenize_rows
from greentrainer_core.errors import InfeasibleBudget, TrainingConfigError
from greentrainer_core.train import Trainer
from tests.core.tiny import ROWS, tiny_llama, tiny_tokenizer


def _examples(tok, n=8):
    return tokenize_rows(
        [SummaryRow(i, s, t) for i, (s, t) in enumerate((ROWS * 4)[:n])], tok, max_length=32
    )


def _trainer(rho, epochs=2, seed=0, **kw):
    tok = tiny_tokenizer()
    config = TrainConfig(epochs=epochs, batch_size=4, max_length=32, lr=1e-2, **kw)
    return Trainer(tiny_llama(seed), tok, _examples(tok), config, rho=rho)


def test_selection_follows_a_changing_rho_schedule_asked_at_each_epoch():
    asked = []

    def schedule(epoch):
        asked.append(epoch)
        return [0.45, 1.0, 0.45][epoch]

    trainer = _trainer(schedule, epochs=3)
    starts = [e for e in trainer.events() if isinstance(e, EpochStart)]
    assert asked == [0, 1, 2]
    assert [s.rho for s in starts] == [0.45, 1.0, 0.45]
    assert len(starts[1].selected) > len(starts[0].selected)
    assert all(s.predicted_step_flops <= s.rho * s.full_step_flops for s in starts)


def test_a_rho_below_every_tensors_cost_is_reported_as_infeasible_not_as_an_autograd_error():
    # No tensor fits alone, so the probe has nothing to rate; it must not run a backward pass
    # with no gradient to compute, and the user must learn the lowest rho that works.
    trainer = _trainer(0.05, epochs=1)
    with pytest.raises(InfeasibleBudget, match=r"rho=0\.05 is below .* rho >= 0\.\d+"):
        list(trainer.events())


def test_tensors_never_selected_keep_bit_identical_weights():
    trainer = _trainer(0.45, epochs=2)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.run()
    frozen = set(before) - trainer.ever_trained
    trained = trainer.ever_trained
    assert frozen and trained
    params = dict(trainer.model.named_parameters())
    assert all(torch.equal(params[n], before[n]) for n in frozen)
    assert any(not torch.equal(params[n], before[n]) for n in trained)


def test_a_tensor_leaving_the_selection_keeps_its_optimizer_state_frozen():
    trainer = _trainer([1.0, 0.45], epochs=2)
    events = trainer.events()
    for event in events:
        if isinstance(event, EpochRecord):
            break
    saved = {p: {k: v.clone() for k, v in s.items()} for p, s in trainer.optimizer.state.items()}
    second = next(events)
    assert isinstance(second, EpochStart)
    left = [n for n, _ in trainer.model.named_parameters() if n not in second.selected]
    list(events)
    params = dict(trainer.model.named_parameters())
    assert left
    for n in left:
        for k, v in saved[params[n]].items():
            assert torch.equal(trainer.optimizer.state[params[n]][k], v), (n, k)


def test_events_carry_the_accounting_of_every_step_and_epoch():
    trainer = _trainer([0.5, 0.7], epochs=2)
    events = list(trainer.events())
    steps = [e for e in events if isinstance(e, StepEvent)]
    records = [e for e in events if isinstance(e, EpochRecord)]
    assert len(steps) == 4 and len(records) == 2 and trainer.history == records
    for record in records:
        mine = [s for s in steps if s.epoch == record.epoch]
        assert record.executed_flops == sum(s.executed_flops for s in mine) > 0
        assert record.full_flops == sum(s.full_flops for s in mine) > record.predicted_flops > 0
        assert record.wall_s >= record.overhead_s > 0
        assert record.loss == pytest.approx(sum(s.loss for s in mine) / len(mine))


def test_resuming_from_an_epoch_checkpoint_matches_an_uninterrupted_run(tmp_path):
    straight = _trainer([0.5, 0.7], epochs=2, seed=1)
    straight.run()
    first = _trainer([0.5, 0.7], epochs=2, seed=1)
    for event in first.events():
        if isinstance(event, EpochRecord):
            first.save_checkpoint(tmp_path / "ckpt.pt")
            break
    resumed = _trainer(
        [0.5, 0.7], epochs=2, seed=2
    )  # different init: everything must come from the file
    resumed.load_checkpoint(tmp_path / "ckpt.pt")
    resumed.run()
    assert [r.epoch for r in resumed.history] == [0, 1]
    assert resumed.history[1].selected == straight.history[1].selected
    expected = dict(straight.model.named_parameters())
    for n, p in resumed.model.named_parameters():
        torch.testing.assert_close(p, expected[n], rtol=0, atol=0, msg=n)


def test_gradient_accumulation_steps_the_optimizer_every_n_micro_batches():
    trainer = _trainer(1.0, epochs=1, grad_accum=2, method="full")
    steps = [e for e in trainer.events() if isinstance(e, StepEvent)]
    assert [s.optimizer_step for s in steps] == [False, True]
    assert trainer.global_step == 1


def test_invalid_options_are_reported_together_naming_each_field():
    with pytest.raises(TrainingConfigError, match="method='sgd'.*epochs=0.*lr=0"):
        TrainConfig(method="sgd", epochs=0, lr=0)
    with pytest.raises(TrainingConfigError, match="rho schedule has 1 values but epoch 1"):
        rho_for_epoch([0.5], 1)
    with pytest.raises(TrainingConfigError, match="rho for epoch 0 is 1.5"):
        rho_for_epoch(1.5, 0)
    with pytest.raises(TrainingConfigError, match="rho schedule has 1 values but epoch 1"):
        _trainer([0.5], epochs=2)  # before any training starts


def test_importance_refresh_every_n_steps_adds_overhead_within_the_epoch():
    tok = tiny_tokenizer()
    config = TrainConfig(epochs=1, batch_size=2, max_length=32, lr=1e-2, importance_every_steps=1)
    refreshed = Trainer(tiny_llama(0), tok, _examples(tok), config, rho=0.6)
    calls = []
    original = refreshed._select
    refreshed._select = lambda epoch, rho, start=0: calls.append(epoch) or original(epoch, rho, start)
    refreshed.run()
    assert calls == [
        0,
        0,
        0,
        0,
    ]  # at the epoch start, then after optimizer steps 1..3 (not after the last)


def test_encoder_decoder_models_train_with_exact_flops_accounting():
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    model = T5ForConditionalGeneration(
        T5Config(
            vocab_size=128,
            d_model=32,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_heads=4,
            decoder_start_token_id=0,
            pad_token_id=0,
            eos_token_id=2,
        )
    )
    tok = tiny_tokenizer()
    examples = tokenize_rows(
        [SummaryRow(i, s, t) for i, (s, t) in enumerate(ROWS)],
        tok,
        is_encoder_decoder=True,
        max_length=32,
        max_target_length=8,
    )
    config = TrainConfig(
        epochs=1, batch_size=4, max_length=32, max_target_length=8, pad_to_max_length=True, lr=1e-2
    )
    trainer = Trainer(model, tok, examples, config, rho=0.6)
    steps = [e for e in trainer.events() if isinstance(e, StepEvent)]
    assert all(s.executed_flops == s.predicted_flops <= 0.6 * s.full_flops for s in steps)
