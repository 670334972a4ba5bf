"""Partial-update options: probe batches of a refresh, selection hysteresis, the learning-rate
scale of a partial update, and the importance metric option."""

import pytest

import greentrainer_core.train as train_module
from greentrainer_core.config import EpochStart, TrainConfig
from greentrainer_core.data import SummaryRow, tokenize_rows
from greentrainer_core.errors import TrainingConfigError
from greentrainer_core.partial import gradient_mass_share, lr_scale, sticky_importance
from greentrainer_core.train import Trainer
from tests.core.tiny import ROWS, tiny_llama, tiny_tokenizer


def _trainer(rho, n=8, epochs=2, **kw):
    tok = tiny_tokenizer()
    rows = [SummaryRow(i, s, t) for i, (s, t) in enumerate((ROWS * 4)[:n])]
    config = TrainConfig(epochs=epochs, batch_size=2, max_length=32, lr=1e-2, **kw)
    return Trainer(tiny_llama(0), tok, tokenize_rows(rows, tok, max_length=32), config, rho=rho)


def _spy(monkeypatch, name):
    calls = []
    real = getattr(train_module, name)

    def spy(*args, **kwargs):
        result = real(*args, **kwargs)
        calls.append((args, kwargs, result))
        return result

    monkeypatch.setattr(train_module, name, spy)
    return calls


def test_a_refresh_inside_the_epoch_probes_the_batches_still_to_come(monkeypatch):
    calls = _spy(monkeypatch, "tensor_importance")
    trainer = _trainer(0.45, n=8, epochs=1, importance_every_steps=1)
    trained = [b["input_ids"] for b in trainer._batches(0)]
    assert len(trained) == 4
    trainer.run()
    probed = [args[2][0]["input_ids"] for args, _, _ in calls]
    # epoch start probes batch 0; the refreshes after steps 0, 1, 2 probe batches 1, 2, 3
    assert len(probed) == 4
    for got, want in zip(probed, trained, strict=True):
        assert got.equal(want)


def test_hysteresis_raises_the_current_selection_at_a_reselection(monkeypatch):
    rated = _spy(monkeypatch, "tensor_importance")
    chosen = _spy(monkeypatch, "select_tensors")
    _trainer(0.45, selection_hysteresis=0.5).run()
    first = set(chosen[0][2].names)
    raw, passed = rated[1][2], chosen[1][0][1]
    for name, value in raw.items():
        boosted = name in first and value > 0
        assert passed[name] == pytest.approx(value * 1.5 if boosted else value), name


def test_the_partial_lr_scale_follows_the_selected_gradient_share_and_its_cap():
    trainer = _trainer(0.45, epochs=1, partial_lr_cap=3.0)
    starts = []
    for event in trainer.events():
        if isinstance(event, EpochStart):
            starts.append(list(trainer.scheduler.base_lrs))
    scale = starts[0][0] / 1e-2
    assert 1.0 < scale <= 3.0
    assert all(lr == pytest.approx(starts[0][0]) for lr in starts[0])
    untouched = _trainer(0.45, epochs=1, partial_lr_cap=1.0)
    untouched.run()
    assert untouched.scheduler.base_lrs == [1e-2, 1e-2]
    everything = _trainer(1.0, epochs=1, partial_lr_cap=3.0)  # all tensors: share 1, no scale
    everything.run()
    assert everything.scheduler.base_lrs == pytest.approx([1e-2, 1e-2])


def test_the_importance_metric_reaches_the_probe(monkeypatch):
    calls = _spy(monkeypatch, "tensor_importance")
    _trainer(0.45, epochs=1, importance_metric="optimizer").run()
    assert calls[0][1]["metric"] == "optimizer"


def test_bad_partial_options_name_each_field():
    with pytest.raises(TrainingConfigError) as info:
        TrainConfig(importance_metric="fisher", selection_hysteresis=-1.0, partial_lr_cap=0.5)
    for name in ("importance_metric", "selection_hysteresis", "partial_lr_cap"):
        assert name in str(info.value)


def test_helpers():
    assert sticky_importance({"a": 1.0, "b": 1.0, "c": -1.0}, ["a", "c"], 0.5) == {
        "a": 1.5, "b": 1.0, "c": -1.0}
    assert gradient_mass_share({"a": 3.0, "b": 1.0, "c": -2.0}, ["b", "c"]) == pytest.approx(0.25)
    assert gradient_mass_share({"a": 0.0}, ["a"]) == 1.0
    assert lr_scale(0.25, 2.0) == 2.0 and lr_scale(0.8, 2.0) == pytest.approx(1.25)
    assert lr_scale(0.1, 1.0) == 1.0 and lr_scale(1.0, 3.0) == 1.0
