"""A finished job's outputs load as users load models: the Hugging Face directory with
transformers (in the base model's dtype), the PEFT adapter with peft, the delta onto the base;
per-epoch checkpoints are kept; the model card parses with huggingface_hub and says what the
run cost and saved."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from sqlalchemy import select
from transformers import AutoModelForCausalLM, AutoTokenizer

from greentrainer_core.checkpoint import apply_delta
from service.models import Artifact
from tests.core.tiny import tiny_llama, tiny_tokenizer
from tests.worker.conftest import Bench
from tests.worker.test_runner import run


def _artifacts(bench: Bench, job_id: str) -> dict[str, Path]:
    with bench.factory() as session:
        rows = session.scalars(select(Artifact).where(Artifact.job_id == job_id))
        return {a.filename: bench.store.local_path(a.storage_key) for a in rows}


def _unpack(archive: Path, into: Path) -> Path:
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into


@pytest.fixture
def bf16_model(tmp_path: Path) -> Path:
    directory = tmp_path / "bf16-model"
    tiny_llama(0).to(torch.bfloat16).save_pretrained(directory)
    tiny_tokenizer().save_pretrained(directory)
    return directory


def test_a_greentrainer_job_leaves_a_loadable_model_its_delta_checkpoints_and_a_card(
        bench: Bench, bf16_model: Path, tmp_path: Path) -> None:
    job_id = bench.job(model=str(bf16_model), validation_dataset_id=bench.dataset_id,
                       test_dataset_id=bench.dataset_id)
    assert run(bench, job_id) == "succeeded"
    files = _artifacts(bench, job_id)
    assert set(files) == {"model.tar.gz", "delta.safetensors", "metrics.json", "README.md",
                          "checkpoint-epoch-0.safetensors", "checkpoint-epoch-1.safetensors"}
    model_dir = _unpack(files["model.tar.gz"], tmp_path / "out") / "model"
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json",
            "README.md"} <= {p.name for p in model_dir.iterdir()}
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    assert next(model.parameters()).dtype == torch.bfloat16  # the base's dtype, not fp32
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert tokenizer("the cat")["input_ids"] == tiny_tokenizer()("the cat")["input_ids"]
    # The delta turns the base into the fine-tuned model.
    base = AutoModelForCausalLM.from_pretrained(bf16_model)
    applied = apply_delta(base, files["delta.safetensors"])
    assert applied
    for name in applied:
        assert torch.equal(dict(base.named_parameters())[name],
                           dict(model.named_parameters())[name])
    # The card: the Hub's metadata and what the run cost.
    job = bench.read(job_id)
    assert job.result is not None
    card = ModelCard.load(files["README.md"])
    assert card.data.library_name == "transformers"
    assert "greentrainer" in card.data.tags and "base_model" not in card.data.to_dict()
    emissions = card.data.co2_eq_emissions
    assert emissions["emissions"] == pytest.approx(job.result["kg_co2"] * 1000, rel=1e-5)
    assert emissions["training_type"] == "fine-tuning"
    assert emissions["geographical_location"] == "GBR"
    assert emissions["hardware_used"] == "CPU (gpu class cpu)"
    assert emissions["source"].startswith("CodeCarbon")
    assert "| 0 | 0.50 |" in card.text and "| 1 | 1.00 |" in card.text  # rho per epoch
    assert "by fewer FLOPs (rho)" in card.text and "by running at cleaner times" in card.text
    assert "final validation loss" in card.text and "### Test set" in card.text
    assert 'AutoModelForCausalLM.from_pretrained("model")' in card.text
    assert (model_dir / "README.md").read_text() == files["README.md"].read_text()


def test_a_lora_job_keeps_its_adapter_and_a_merged_model(bench: Bench, tmp_path: Path) -> None:
    job_id = bench.job(method="lora", rho_policy={"type": "fixed", "rho": 1.0},
                       hyperparameters={"epochs": 1, "batch_size": 4, "max_length": 64,
                                        "learning_rate": 0.01})
    assert run(bench, job_id) == "succeeded"
    files = _artifacts(bench, job_id)
    assert {"model.tar.gz", "adapter.tar.gz", "checkpoint-epoch-0.tar.gz"} <= set(files)
    assert "delta.safetensors" not in files
    out = tmp_path / "out"
    merged = AutoModelForCausalLM.from_pretrained(_unpack(files["model.tar.gz"], out) / "model")
    from peft import PeftModel

    base = AutoModelForCausalLM.from_pretrained(bench.model_dir)
    tuned = PeftModel.from_pretrained(base, _unpack(files["adapter.tar.gz"], out) / "adapter")
    batch = torch.tensor([[1, 5, 6, 7]])
    with torch.no_grad():
        torch.testing.assert_close(tuned(batch).logits, merged(batch).logits,
                                   rtol=1e-4, atol=1e-4)
        untuned = AutoModelForCausalLM.from_pretrained(bench.model_dir)(batch).logits
        assert not torch.allclose(merged(batch).logits, untuned)  # the adapter trained
    card = ModelCard.load(files["README.md"])
    assert "peft" in card.data.tags and "PeftModel.from_pretrained" in card.text
