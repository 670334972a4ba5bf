"""Pages render whatever a worker recorded: epochs without energy, intensity, loss or tensor
names, failed jobs with their error, and teams with no data at all."""

from __future__ import annotations

import re

from greentrainer_core.config import EpochRecord
from service.db import session_scope
from service.job_events import append_event
from service.job_records import EpochMeasurement, record_epoch
from service.jobs import transition
from service.models import Job
from service.states import JobStatus
from tests.dashboard.conftest import Site
from tests.dashboard.helpers import api_job, signed_in_client


def test_a_job_with_sparse_epochs_and_an_error_renders(site: Site) -> None:
    _, key = site.new_team()
    job_id = api_job(site, key)
    with session_scope(site.factory) as session:
        job = session.get_one(Job, job_id)
        transition(session, job, JobStatus.RUNNING)
        for index in range(2):
            row, _ = record_epoch(session, job, EpochRecord(
                epoch=index, rho=0.5, selected=[], predicted_flops=int(1e12),
                executed_flops=int(1e12), full_flops=int(2e12), wall_s=1.0))
            row.loss = None  # a row without a loss (no step finished): no loss chart
        transition(session, job, JobStatus.FAILED, error_code="worker_lost",
                   error_message="the worker died 3 times")
    with signed_in_client(site, key) as (client, _):
        page = client.get(f"/dashboard/jobs/{job_id}")
        assert page.status_code == 200
        assert "worker_lost: the worker died 3 times" in page.text
        assert 'id="chart-flops"' in page.text and 'id="chart-loss"' not in page.text
        assert 'id="chart-tensors"' not in page.text
        assert client.get("/dashboard").status_code == 200
    series = site.client.get(f"/jobs/{job_id}/series",
                             headers={"Authorization": f"Bearer {key}"}).json()
    assert series["totals"]["kg_co2"] == 0 and series["reference_source"] is None
    assert series["totals"]["executed_flops"] == 2e12


def test_an_empty_team_gets_pages_without_charts(site: Site) -> None:
    _, key = site.new_team()
    with signed_in_client(site, key) as (client, _):
        overview = client.get("/dashboard")
        assert overview.status_code == 200 and "No finished epochs yet" in overview.text
        grid = client.get("/dashboard/grid")
        assert grid.status_code == 200 and "offline fallback" in grid.text
        assert "No jobs yet." in client.get("/dashboard/jobs").text


def test_the_job_page_shows_the_carbon_decisions_and_what_is_estimated(site: Site) -> None:
    _, key = site.new_team()
    job_id = api_job(site, key)
    with session_scope(site.factory) as session:
        job = session.get_one(Job, job_id)
        transition(session, job, JobStatus.RUNNING)
        append_event(session, job_id, "epoch_start", "epoch 0 started", data={
            "epoch_index": 0, "rho": 0.55, "carbon": {"carbon_intensity_g_per_kwh": 212.0},
            "plan": {"reason": "the next hours are no cleaner", "forecast_sources_hours":
                     {"live": 0.5, "provider": 1.5, "history": 22.0}}})
        record_epoch(session, job, EpochRecord(
            epoch=0, rho=0.55, selected=[], predicted_flops=int(1e12),
            executed_flops=int(1e12), full_flops=int(2e12), wall_s=60.0),
            EpochMeasurement(212.0, "codecarbon-static:GBR", 0.01, 0.00212, False))
    with signed_in_client(site, key) as (client, _):
        page = client.get(f"/dashboard/jobs/{job_id}").text
    decisions = page[page.index('id="carbon-decisions"'):]
    assert "epoch 0 at rho 0.55, 212 g/kWh now: the next hours are no cleaner" in decisions
    assert "provider forecast 1.5 h, history profile 22 h" in decisions
    estimates = page[page.index('id="estimates"'):page.index('id="carbon-decisions"')]
    assert "never ran" in estimates and "static country average" in estimates
    assert "CO2 saved (estimated)" in page
    totals = site.client.get(f"/jobs/{job_id}/series",
                             headers={"Authorization": f"Bearer {key}"}).json()["totals"]
    assert totals["intensity_is_estimate"] and totals["savings_are_estimates"]
    assert not totals["energy_is_estimate"]


def test_a_job_with_validation_loss_shows_it_beside_the_training_loss(site: Site) -> None:
    _, key = site.new_team()
    job_id = api_job(site, key)
    with session_scope(site.factory) as session:
        job = session.get_one(Job, job_id)
        transition(session, job, JobStatus.RUNNING)
        for index, (loss, validation) in enumerate([(3.5, 3.25), (2.5, 2.875)]):
            record_epoch(session, job, EpochRecord(
                epoch=index, rho=0.5, selected=[], loss=loss, validation_loss=validation,
                predicted_flops=1, executed_flops=1, full_flops=2, wall_s=1.0))
    with signed_in_client(site, key) as (client, _):
        page = client.get(f"/dashboard/jobs/{job_id}").text
    assert "Training and validation loss per epoch" in page
    assert 'data-series="validation loss"' in page
    assert "<td data-validation-loss>3.2500</td>" in page
    assert "<td data-validation-loss>2.8750</td>" in page
    epochs = site.client.get(f"/jobs/{job_id}/epochs",
                             headers={"Authorization": f"Bearer {key}"}).json()
    assert [e["validation_loss"] for e in epochs] == [3.25, 2.875]


def test_the_validation_metrics_of_a_result_are_shown_beside_the_test_scores(site: Site) -> None:
    _, key = site.new_team()
    job_id = api_job(site, key)
    result = {"epochs": 2, "kg_co2": 0.001,
              "rouge": {"rouge1": 30.0, "rouge2": 10.0, "rougeL": 25.0, "n": 8},
              "validation": {"loss_per_epoch": [2.5, 2.25], "loss": 2.25, "best_loss": 2.25,
                             "best_epoch": 1, "early_stopped": False,
                             "rouge": {"rouge1": 31.5, "rouge2": 11.0, "rougeL": 26.0, "n": 7}}}
    with session_scope(site.factory) as session:
        job = session.get_one(Job, job_id)
        transition(session, job, JobStatus.RUNNING)
        transition(session, job, JobStatus.SUCCEEDED, result=result)
    with signed_in_client(site, key) as (client, _):
        page = client.get(f"/dashboard/jobs/{job_id}").text
    shown = dict(re.findall(r'data-metric="([^"]+)">([^<]+)<', page))
    assert shown == {"rouge.rouge1": "30.0000", "rouge.rouge2": "10.0000",
                     "rouge.rougeL": "25.0000", "validation.loss": "2.2500",
                     "validation.best_loss": "2.2500", "validation.rouge.rouge1": "31.5000",
                     "validation.rouge.rouge2": "11.0000", "validation.rouge.rougeL": "26.0000"}
