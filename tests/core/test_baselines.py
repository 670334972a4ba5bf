"""The baselines run in the same harness with the same accounting."""

import math

import pytest
import torch

from greentrainer_core.config import EpochRecord, TrainConfig
from greentrainer_core.data import SummaryRow, tokenize_rows
from greentrainer_core.errors import TrainingConfigError
from greentrainer_core.methods import top2_names, wrap_peft
from greentrainer_core.train import Trainer
from tests.core.tiny import ROWS, tiny_gemma3, tiny_llama, tiny_tokenizer


@pytest.mark.parametrize("method", ["full", "top2", "lora", "prefix", "greentrainer"])
def test_every_method_trains_and_reports_counted_flops_against_the_same_full_counterfactual(method):
    tok = tiny_tokenizer()
    examples = tokenize_rows(
        [SummaryRow(i, s, t) for i, (s, t) in enumerate(ROWS)], tok, max_length=32
    )
    config = TrainConfig(
        method=method, epochs=1, batch_size=4, max_length=32, pad_to_multiple_of=32, lr=1e-2
    )
    trainer = Trainer(tiny_llama(tie=True), tok, examples, config, rho=0.6)
    [record] = [e for e in trainer.events() if isinstance(e, EpochRecord)]
    assert math.isfinite(record.loss) and record.steps == 2
    reference = Trainer(
        tiny_llama(tie=True), tok, examples, TrainConfig(method="full", max_length=32)
    ).profile(4, 32)
    assert record.full_flops == 2 * int(reference.full_flops)
    assert 0 < record.executed_flops <= record.full_flops


def test_lora_trains_only_adapters_on_query_and_value_projections():
    model = wrap_peft(tiny_llama(), "lora")
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and ("q_proj" in n or "v_proj" in n) for n in trainable)


def test_top2_is_the_last_two_blocks_and_the_final_norm_never_the_embedding():
    model = tiny_llama(tie=True)  # 2 blocks: both are the "last two"
    names = top2_names(model)
    assert "model.norm.weight" in names and "model.embed_tokens.weight" not in names
    assert {n.split(".")[2] for n in names if n.startswith("model.layers.")} == {"0", "1"}


def test_lora_on_an_unknown_architecture_is_a_clear_error():
    model = tiny_llama()
    model.config.model_type = "mystery"
    with pytest.raises(TrainingConfigError, match="model_type 'mystery'"):
        wrap_peft(model, "lora")


def test_frozen_base_weights_of_lora_stay_bit_identical():
    tok = tiny_tokenizer()
    examples = tokenize_rows(
        [SummaryRow(i, s, t) for i, (s, t) in enumerate(ROWS)], tok, max_length=32
    )
    model = tiny_llama()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = Trainer(
        model, tok, examples, TrainConfig(method="lora", batch_size=4, max_length=32, lr=1e-2)
    )
    trainer.run()
    for n, p in trainer.model.named_parameters():
        if "lora_" not in n:
            key = n.removeprefix("base_model.model.").replace(".base_layer", "")
            assert torch.equal(p, before[key]), n


@pytest.mark.parametrize("method", ["greentrainer", "lora"])
def test_a_second_model_family_trains_with_greentrainer_and_lora(method):
    """Gemma 3 (the accuracy benchmark's second family): GreenTrainer profiles, selects and trains
    its tensors within the budget; LoRA finds its query and value projections."""
    tok = tiny_tokenizer()
    examples = tokenize_rows(
        [SummaryRow(i, s, t) for i, (s, t) in enumerate(ROWS)], tok, max_length=32
    )
    config = TrainConfig(
        method=method, epochs=1, batch_size=4, max_length=32, pad_to_multiple_of=32, lr=1e-2
    )
    trainer = Trainer(tiny_gemma3(), tok, examples, config, rho=0.6)
    [record] = [e for e in trainer.events() if isinstance(e, EpochRecord)]
    assert math.isfinite(record.loss) and record.steps == 2
    assert 0 < record.executed_flops < record.full_flops
    if method == "greentrainer":
        assert record.n_selected > 0 and record.predicted_flops <= 0.6 * record.full_flops * 1.01
