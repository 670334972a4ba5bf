"""The model card's YAML is what huggingface_hub's ModelCard / ModelCardData read: the Hub id of
the shipped base model, data sets only where their names are Hub ids, CO2 in grams; its body
gives the figures of the job's series (no figure invented)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from huggingface_hub import ModelCard, ModelCardData

from service.stats import EpochPoint, JobSeries, Totals
from worker.model_card import SHIPPED_HUB_ID, CardFacts, model_card

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _point(index: int, rho: float, kg: float, validation: float) -> EpochPoint:
    return EpochPoint(epoch_index=index, rho=rho, carbon_intensity_g_per_kwh=200.0,
                      carbon_intensity_source="static", selected_tensor_count=10 + index,
                      selected_tensor_names=[], predicted_flops=1e12, executed_flops=rho * 2e12,
                      full_ft_flops=2e12, wall_seconds=60.0, loss=2.0 - index,
                      validation_loss=validation, energy_kwh=0.01, kg_co2=kg,
                      energy_is_estimate=False, started_at=NOW, finished_at=NOW,
                      counterfactual_kg_co2=0.004, saved_by_fewer_flops_kg=0.001,
                      saved_by_cleaner_time_kg=0.0005)


def _card() -> ModelCard:
    job = SimpleNamespace(id="job_1", model="smollm2-135m-instruct", method="greentrainer")
    series = JobSeries(job_id="job_1", reference_g_per_kwh=250.0, reference_source="submission",
                       epochs=[_point(0, 0.5, 0.002, 2.5), _point(1, 0.7, 0.0025, 2.25)],
                       totals=Totals(jobs=1, epochs=2, executed_flops=2.4e12, full_ft_flops=4e12,
                                     energy_kwh=0.02, full_ft_energy_kwh=0.04, kg_co2=0.0045,
                                     counterfactual_kg_co2=0.008, saved_by_fewer_flops_kg=0.002,
                                     saved_by_cleaner_time_kg=0.001, saved_kg=0.003))
    result = {"validation": {"loss_per_epoch": [2.5, 2.25], "loss": 2.25, "best_loss": 2.25,
                             "best_epoch": 1, "early_stopped": False,
                             "rouge": {"rouge1": 31.5, "rouge2": 10.25, "rougeL": 28.0, "n": 7}}}
    facts = CardFacts("NVIDIA H200 (gpu class h200)", "GB",
                      ("model.tar.gz", "delta.safetensors", "metrics.json", "README.md"),
                      ("train.jsonl", "abisee/cnn_dailymail", "data/v1/train-00000.parquet"))
    return ModelCard(model_card(job, series, result, facts))


def test_the_yaml_is_the_hubs_model_card_metadata() -> None:
    card = _card()
    assert isinstance(card.data, ModelCardData)
    data = card.data.to_dict()
    assert data["base_model"] == SHIPPED_HUB_ID
    assert data["datasets"] == ["abisee/cnn_dailymail"]  # the Hub ids among the data sets
    assert data["library_name"] == "transformers"
    assert {"greentrainer", "carbon-aware", "method-greentrainer"} <= set(data["tags"])
    assert data["co2_eq_emissions"] == {
        "emissions": 4.5, "source": "CodeCarbon", "training_type": "fine-tuning",
        "geographical_location": "GB", "hardware_used": "NVIDIA H200 (gpu class h200)"}
    # Written out and read back, nothing changes.
    assert ModelCard(str(card)).data.to_dict() == data


def test_the_body_has_rho_per_epoch_the_savings_by_cause_and_the_metrics() -> None:
    text = _card().text
    assert "| 0 | 0.50 | 10 |" in text and "| 1 | 0.70 | 11 |" in text
    assert "2.4e+12 executed, 60.0 % of full fine-tuning's 4e+12" in text
    assert "0.02 kWh measured, 50.0 % of full fine-tuning's 0.04 kWh" in text
    assert "CO2 saved: 3 g in all: 2 g by fewer FLOPs (rho) and 1 g by running at cleaner " \
        "times (reference intensity 250 g/kWh, at submission)" in text
    assert "final validation loss: 2.2500 (best 2.2500 after epoch 1)" in text
    assert "ROUGE-1/2/L: 31.50 / 10.25 / 28.00 on 7 examples" in text
    assert "apply_delta" in text and "PeftModel" not in text
