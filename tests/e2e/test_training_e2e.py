"""A job submitted through the API runs on a real Celery worker process and leaves per-epoch
rows, energy and artifacts (Postgres + Redis, and the embedded SQLite mode)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import Stack

RHOS = [0.5, 1.0, 0.6]


def _run_scheduled_job(stack: Stack) -> tuple[dict[str, str], dict[str, Any]]:
    stack.start_worker()
    team = stack.team()
    job_id = stack.submit(team, hyperparameters={"epochs": 3, "batch_size": 4,
                                                 "max_length": 64},
                          rho_policy={"type": "schedule", "rhos": RHOS})
    job = stack.wait(team, job_id, lambda j: j["status"] in ("succeeded", "failed", "cancelled"))
    assert job["status"] == "succeeded", job
    return team, job


def _check_epochs_and_artifacts(stack: Stack, team: dict[str, str], job: dict[str, Any]) -> None:
    epochs = stack.client.get(f"/jobs/{job['id']}/epochs", headers=team).json()
    assert [e["epoch_index"] for e in epochs] == [0, 1, 2]
    assert [e["rho"] for e in epochs] == RHOS
    for epoch in epochs:
        assert 0 < epoch["executed_flops"] <= epoch["rho"] * epoch["full_ft_flops"] * 1.0001
        assert epoch["energy_kwh"] > 0 and epoch["kg_co2"] > 0
        assert epoch["carbon_intensity_g_per_kwh"] > 0 and epoch["carbon_intensity_source"]
        # CodeCarbon was given the epoch's intensity: CO2 = kWh x g/kWh.
        assert epoch["kg_co2"] == pytest.approx(
            epoch["energy_kwh"] * epoch["carbon_intensity_g_per_kwh"] / 1000, rel=1e-6)
    assert epochs[0]["executed_flops"] < epochs[1]["executed_flops"]
    artifacts = stack.client.get(f"/jobs/{job['id']}/artifacts", headers=team).json()
    kinds = {a["kind"]: a for a in artifacts}
    assert {"model", "delta", "metrics"} <= set(kinds)
    for artifact in artifacts:
        content = stack.client.get(f"/jobs/{job['id']}/artifacts/{artifact['id']}/content",
                                   headers=team)
        assert content.status_code == 200 and len(content.content) == artifact["size_bytes"]
    assert job["result"]["epochs"] == 3 and job["result"]["energy_kwh"] > 0
    # The worker's log tells the job's story, a line per epoch, and carries no progress bars
    # (loading the model and building the data set draw them; Celery would log each redraw)
    # nor CodeCarbon's three lines per epoch.
    log = stack.worker_log()
    for epoch in epochs:
        share = epoch["executed_flops"] / epoch["full_ft_flops"]
        assert (f"job {job['id']}: epoch {epoch['epoch_index']} done at rho {epoch['rho']:.2f}: "
                f"loss ") in log and f"{share:.0%} of full fine-tuning's FLOPs" in log
    assert f"job {job['id']} succeeded: 3 epoch(s)" in log
    assert f"job {job['id']}: loaded in " in log and "8 training examples" in log
    assert "it/s]" not in log and "celery.redirected" not in log, log[-2000:]
    assert "[codecarbon INFO" not in log and "[codecarbon WARNING" not in log, log[-2000:]


def test_job_runs_on_redis_and_postgres_with_the_scheduled_rho(production_stack: Stack) -> None:
    team, job = _run_scheduled_job(production_stack)
    _check_epochs_and_artifacts(production_stack, team, job)


def test_job_runs_in_embedded_mode_without_any_server(embedded_stack: Stack) -> None:
    team, job = _run_scheduled_job(embedded_stack)
    _check_epochs_and_artifacts(embedded_stack, team, job)
