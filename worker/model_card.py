"""The model card (README.md) of a fine-tuned model, in the Hugging Face Hub's format: YAML
metadata (``base_model``, ``datasets`` where they are Hub ids, ``library_name``, ``tags`` and
``co2_eq_emissions`` as the Hub defines it, emissions in grams) and a body with what the run
cost and saved: rho per epoch, FLOPs and energy against full fine-tuning, the CO2 saved split by
cause (`service.savings`), the validation and test metrics, and how to load each output."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from greentrainer_core.methods import METHODS
from greentrainer_core.models import SHIPPED_MODEL
from service.stats import JobSeries

SHIPPED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the model the shipped GGUF quantizes
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
G_PER_KG = 1000.0


@dataclass(frozen=True)
class CardFacts:
    """What the card says beyond the job's rows: where and on what it ran, what was saved."""

    hardware: str  # e.g. "NVIDIA H200 (gpu class h200)" or "CPU (gpu class cpu)"
    location: str  # the grid region the job was charged at (e.g. "GB"), or the worker's country
    files: tuple[str, ...]  # the job's output files, to say how to load each
    dataset_names: tuple[str, ...] = ()  # the upload names of its data sets


def hub_base_model(model: str) -> str | None:
    """The Hub id of the base model, when there is one (a local path or file has none)."""
    if model == SHIPPED_MODEL:
        return SHIPPED_HUB_ID
    return model if _HUB_ID.match(model) and not model.startswith((".", "/")) else None


def card_metadata(job: Any, series: JobSeries, facts: CardFacts) -> dict[str, Any]:
    """The YAML header's fields (huggingface_hub's `ModelCardData` takes them as they are)."""
    method = METHODS[job.method]
    totals = series.totals
    emissions_source = "CodeCarbon (estimated from TDP)" if totals.energy_is_estimate \
        else "CodeCarbon"
    data: dict[str, Any] = {
        "library_name": "transformers",
        "tags": ["greentrainer", "carbon-aware", "fine-tuned", f"method-{job.method}"]
        + (["peft"] if method.peft else []),
        "co2_eq_emissions": {
            "emissions": totals.kg_co2 * G_PER_KG,
            "source": emissions_source,
            "training_type": "fine-tuning",
            "geographical_location": facts.location,
            "hardware_used": facts.hardware,
        },
    }
    base = hub_base_model(job.model)
    if base:
        data["base_model"] = base
    hub_datasets = [name for name in facts.dataset_names if _HUB_ID.match(name)]
    if hub_datasets:
        data["datasets"] = hub_datasets
    return data


def _percent(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "n/a"


def _epoch_table(series: JobSeries) -> list[str]:
    lines = ["| epoch | rho | tensors trained | FLOPs | full FT FLOPs | energy (kWh) | "
             "CO2 (g) | intensity (g/kWh) | loss | validation loss |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for p in series.epochs:
        def num(value: float | None, spec: str) -> str:
            return format(value, spec) if value is not None else "n/a"
        lines.append(
            f"| {p.epoch_index} | {p.rho:.2f} | {p.selected_tensor_count} | "
            f"{p.executed_flops:.3g} | {p.full_ft_flops:.3g} | {num(p.energy_kwh, '.3g')} | "
            f"{num(p.kg_co2 * G_PER_KG if p.kg_co2 is not None else None, '.3g')} | "
            f"{num(p.carbon_intensity_g_per_kwh, '.0f')} | {num(p.loss, '.4f')} | "
            f"{num(p.validation_loss, '.4f')} |")
    return lines


def _metrics(result: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    validation = result.get("validation")
    if validation:
        lines += ["", "### Validation", ""]
        if "loss" in validation:
            lines.append(f"- final validation loss: {validation['loss']:.4f} (best "
                         f"{validation['best_loss']:.4f} after epoch {validation['best_epoch']})")
        if validation.get("early_stopped"):
            lines.append("- training stopped early: the validation loss stopped improving")
        if "rouge" in validation:
            r = validation["rouge"]
            lines.append(f"- ROUGE-1/2/L: {r['rouge1']:.2f} / {r['rouge2']:.2f} / "
                         f"{r['rougeL']:.2f} on {r['n']} examples")
    if "rouge" in result:
        r = result["rouge"]
        lines += ["", "### Test set", "",
                  f"- ROUGE-1/2/L: {r['rouge1']:.2f} / {r['rouge2']:.2f} / {r['rougeL']:.2f} "
                  f"on {r['n']} examples"]
    return lines


def _loading(job: Any, facts: CardFacts) -> list[str]:
    lines = ["", "## How to load it", "", "Unpack `model.tar.gz` (it holds this card):", "",
             "```python", "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
             'model = AutoModelForCausalLM.from_pretrained("model")',
             'tokenizer = AutoTokenizer.from_pretrained("model")', "```"]
    if "adapter.tar.gz" in facts.files:
        merged = job.method == "lora"
        lines += ["", "The PEFT adapter is in `adapter.tar.gz`"
                  + (" (the model above has it merged already):" if merged else
                     " (prefix tuning cannot be merged: the model above is the base model, "
                     "load the adapter on it):"), "",
                  "```python", "from peft import PeftModel", "",
                  'tuned = PeftModel.from_pretrained(model, "adapter")', "```"]
    if "delta.safetensors" in facts.files:
        lines += ["", "`delta.safetensors` holds only the tensors that were trained; it turns "
                  "the base model into this one:", "", "```python",
                  "from greentrainer_core.checkpoint import apply_delta", "",
                  "apply_delta(base_model, \"delta.safetensors\")", "```"]
    return lines


def card_body(job: Any, series: JobSeries, result: dict[str, Any], facts: CardFacts) -> str:
    """The Markdown after the YAML header."""
    t = series.totals
    base = hub_base_model(job.model) or job.model
    reference = (f"{series.reference_g_per_kwh:.0f} g/kWh, at {series.reference_source}"
                 if series.reference_g_per_kwh is not None else "unknown")
    lines = [f"# {job.id}", "",
             f"`{base}` fine-tuned by GreenTrainer with the `{job.method}` method "
             f"({METHODS[job.method].trains}), {t.epochs} epoch(s).", "",
             "## Compute, energy and CO2", "",
             f"- FLOPs: {t.executed_flops:.4g} executed, {_percent(t.executed_flops, t.full_ft_flops)}"
             f" of full fine-tuning's {t.full_ft_flops:.4g}",
             f"- energy: {t.energy_kwh:.4g} kWh measured, {_percent(t.energy_kwh, t.full_ft_energy_kwh)}"
             f" of full fine-tuning's {t.full_ft_energy_kwh:.4g} kWh (estimated on the same "
             "hardware)" + (" (some energy estimated from TDP)" if t.energy_is_estimate else ""),
             f"- CO2 emitted: {t.kg_co2 * G_PER_KG:.4g} g; full fine-tuning at submission time "
             f"would have emitted {t.counterfactual_kg_co2 * G_PER_KG:.4g} g",
             f"- CO2 saved: {t.saved_kg * G_PER_KG:.4g} g in all: "
             f"{t.saved_by_fewer_flops_kg * G_PER_KG:.4g} g by fewer FLOPs (rho) and "
             f"{t.saved_by_cleaner_time_kg * G_PER_KG:.4g} g by running at cleaner times "
             f"(reference intensity {reference})", "",
             "## Per epoch", "", *_epoch_table(series)]
    if result.get("stopped_early"):
        lines += ["", f"Stopped early: {result['stopped_early']}."]
    metrics = _metrics(result)
    if metrics:
        lines += ["", "## Metrics", *metrics]
    return "\n".join(lines + _loading(job, facts)) + "\n"


def model_card(job: Any, series: JobSeries, result: dict[str, Any], facts: CardFacts) -> str:
    """The README.md text: YAML front matter, then the body."""
    from huggingface_hub import ModelCard, ModelCardData

    data = ModelCardData(**card_metadata(job, series, facts))
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n{card_body(job, series, result, facts)}"))
