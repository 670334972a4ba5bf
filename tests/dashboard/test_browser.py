"""The dashboard in a real headless Chromium (Debian's, driven by Playwright): sign in, upload a
data set and submit a job through the form, watch it succeed without reloading, read its charts
against the API's epoch rows, sign out; and one team cannot open another team's job page."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime, timedelta
from typing import Any

from playwright.sync_api import expect

from tests.dashboard.conftest import ARTIFACTS, Site, screenshot
from tests.dashboard.helpers import api_job

ROWS = [{"source": f"Summarise: dialogue number {i}", "target": f"summary {i}"} for i in range(6)]


def sign_in(page: Any, site: Site, key: str) -> None:
    page.goto(f"{site.base_url}/dashboard/login")
    page.fill("#api_key", key)
    page.click("#sign-in")
    expect(page).to_have_url(f"{site.base_url}/dashboard")


def raws(page: Any, selector: str) -> list[float]:
    return [float(v) for v in page.eval_on_selector_all(
        selector, "nodes => nodes.map(n => n.dataset.raw)")]


def api(site: Site, key: str, path: str) -> Any:
    r = site.client.get(path, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    return r.json()


def test_submit_watch_and_read_a_job_in_the_browser(site: Site, page: Any) -> None:
    _, key = site.new_team()
    sign_in(page, site, key)

    page.goto(f"{site.base_url}/dashboard/jobs")
    page.set_input_files("#dataset_file", files=[{
        "name": "dialogues.jsonl", "mimeType": "application/json",
        "buffer": "\n".join(json.dumps(r) for r in ROWS).encode()}])
    page.select_option("#method", "greentrainer")
    page.fill("#epochs", "3")
    page.select_option("#rho_type", "carbon-aware")
    page.fill("#rho_min", "0.3")
    page.fill("#rho_max", "1.0")
    page.fill("#region", "GB")
    deadline = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    page.fill("#deadline", deadline)
    page.fill("#co2_budget_kg", "0.5")
    page.click("#submit-job")
    expect(page).to_have_url(re.compile(r"/dashboard/jobs/job_[0-9a-f]+$"))
    job_id = page.url.rsplit("/", 1)[1]
    job = api(site, key, f"/jobs/{job_id}")
    assert job["status"] == "queued" and job["rho_policy"]["type"] == "carbon-aware"
    assert job["rho_policy"]["rho_min"] == 0.3 and job["rho_policy"]["co2_budget_kg"] == 0.5

    # The live list follows the job to the end with no reload (a page variable survives).
    page.goto(f"{site.base_url}/dashboard/jobs")
    page.evaluate("window.__sameDocument = 'yes'")
    status = page.locator(f'tr[data-job-id="{job_id}"] [data-role="status"]')
    expect(status).to_have_text("queued")
    worker = site.worker()
    thread = worker.start(job_id)
    expect(status).to_have_text("waiting_for_green", timeout=15_000)
    expect(status).to_have_text("running", timeout=15_000)
    expect(status).to_have_text("succeeded", timeout=30_000)
    thread.join(timeout=10)
    assert worker.error is None, worker.error
    assert page.evaluate("window.__sameDocument") == "yes"
    expect(page.locator(f'tr[data-job-id="{job_id}"] [data-role="epochs"]')).to_have_text("3")
    screenshot(page, f"jobs-{site.backend}")

    # The job page's charts are drawn from the job's real epoch rows.
    epochs = api(site, key, f"/jobs/{job_id}/epochs")
    page.goto(f"{site.base_url}/dashboard/jobs/{job_id}")
    expect(page.locator("#job-status")).to_have_text("succeeded")
    assert raws(page, '#chart-carbon .pt[data-series="rho"]') == [e["rho"] for e in epochs]
    assert raws(page, '#chart-carbon .pt[data-series="carbon intensity (g/kWh)"]') == [
        e["carbon_intensity_g_per_kwh"] for e in epochs]
    planned = api(site, key, f"/jobs/{job_id}")["planned_start_at"]
    band = page.locator("#chart-carbon rect.band")
    assert band.count() == 1 and planned[11:16] in band.get_attribute("data-label")
    assert raws(page, '#chart-flops .pt[data-series="executed"]') == [
        e["executed_flops"] for e in epochs]
    assert raws(page, '#chart-flops .pt[data-series="full fine-tuning"]') == [
        e["full_ft_flops"] for e in epochs]
    assert raws(page, '#chart-energy rect.pt') == [e["energy_kwh"] for e in epochs]
    assert raws(page, '#chart-loss .pt[data-series="loss"]') == [e["loss"] for e in epochs]
    for epoch in epochs:
        trained = page.eval_on_selector_all(
            f'#chart-tensors rect.cell[data-col="{epoch["epoch_index"]}"]',
            "cells => cells.reduce((n, c) => n + Number(c.dataset.selected), 0)")
        assert trained == epoch["selected_tensor_count"]
    expect(page.locator('[data-metric="rouge.rouge1"]')).to_have_text("0.4213")
    expect(page.locator("#events")).to_contain_text("waiting for a green window")
    link = page.locator("#artifacts a")
    download = page.request.get(site.base_url + link.get_attribute("href"))
    assert download.status == 200 and json.loads(download.body()) == worker.result
    series = api(site, key, f"/jobs/{job_id}/series")
    assert series["totals"]["saved_by_cleaner_time_kg"] > 0  # it ran cleaner than submitted
    job_shot = screenshot(page, f"job-{site.backend}")

    page.goto(f"{site.base_url}/dashboard")
    totals = api(site, key, "/stats/overview")["totals"]
    shown = page.eval_on_selector_all("#totals [data-value]", "n => n.map(e => e.dataset.value)")
    assert [float(v) for v in shown] == [
        totals[k] for k in ("executed_flops", "energy_kwh", "kg_co2", "saved_kg",
                            "saved_by_fewer_flops_kg", "saved_by_cleaner_time_kg")]
    assert raws(page, '#chart-overview-flops .pt[data-series="executed"]') == [
        b["executed_flops"] for b in api(site, key, "/stats/overview")["series"]]
    expect(page.locator("#offline-label")).to_contain_text("offline fallback")
    overview_shot = screenshot(page, f"overview-{site.backend}")
    if site.backend == "sqlite":
        shutil.copy(job_shot, ARTIFACTS / "dashboard-job.png")
        shutil.copy(overview_shot, ARTIFACTS / "dashboard-overview.png")

    page.click("#sign-out")
    expect(page).to_have_url(f"{site.base_url}/dashboard/login")
    page.goto(f"{site.base_url}/dashboard/jobs/{job_id}")
    expect(page).to_have_url(f"{site.base_url}/dashboard/login")


def test_another_teams_job_page_is_not_found_in_the_browser(site: Site, page: Any) -> None:
    _, key_a = site.new_team()
    _, key_b = site.new_team()
    job_a = api_job(site, key_a)
    sign_in(page, site, key_b)
    response = page.goto(f"{site.base_url}/dashboard/jobs/{job_a}")
    assert response is not None and response.status == 404
    expect(page.locator("h1")).to_have_text("Not found")
    expect(page.locator("body")).not_to_contain_text("smollm2")


def test_the_form_shows_the_apis_validation_messages(site: Site, page: Any) -> None:
    _, key = site.new_team()
    dataset = api_job(site, key) and api(site, key, "/datasets")["data"][0]["id"]
    sign_in(page, site, key)
    page.goto(f"{site.base_url}/dashboard/jobs")
    page.select_option("#training_dataset", dataset)
    page.select_option("#rho_type", "carbon-aware")
    page.fill("#rho_min", "0.9")
    page.fill("#rho_max", "0.5")
    page.fill("#region", "GB")
    page.click("#submit-job")
    expected = site.client.post("/jobs", headers={"Authorization": f"Bearer {key}"}, json={
        "model": "smollm2-135m-instruct", "training_dataset": dataset,
        "rho_policy": {"type": "carbon-aware", "rho_min": 0.9, "rho_max": 0.5, "region": "GB"}})
    assert expected.status_code == 422
    message = expected.json()["error"]["message"]
    expect(page.locator("#form-errors")).to_contain_text(message)
    expect(page.locator('.field-error[data-field="rho_policy.rho_max"]')).to_have_text(message)
    screenshot(page, f"form-errors-{site.backend}")
    page.fill("#model", "no-such-model")
    page.fill("#rho_max", "1.0")
    page.click("#submit-job")
    unknown = site.client.post("/jobs", headers={"Authorization": f"Bearer {key}"}, json={
        "model": "no-such-model", "training_dataset": dataset})
    expect(page.locator("#form-errors")).to_contain_text(unknown.json()["error"]["message"])


def open_new_job(page: Any, site: Site) -> tuple[str, str]:
    """Sign in as a new team with one queued job and open the job's page; (key, job id)."""
    _, key = site.new_team()
    job_id = api_job(site, key)
    sign_in(page, site, key)
    page.goto(f"{site.base_url}/dashboard/jobs/{job_id}")
    return key, job_id


def test_cancel_button_cancels_the_job(site: Site, page: Any) -> None:
    key, job_id = open_new_job(page, site)
    page.click("#cancel-job")
    expect(page.locator("#job-status")).to_have_text("cancelled")
    assert api(site, key, f"/jobs/{job_id}")["status"] == "cancelled"


def test_the_admin_sees_every_team(site: Site, page: Any) -> None:
    teams = [site.new_team() for _ in range(2)]
    for index, (_, key) in enumerate(teams):
        site.worker(epoch_delay_s=0.0, wait_s=0.0, epochs=2 + index).run(api_job(site, key))
    sign_in(page, site, site.admin_headers["Authorization"].removeprefix("Bearer "))
    admin = site.client.get("/stats/overview", headers=site.admin_headers).json()
    for team_id, _ in teams:
        row = page.locator(f'#teams tr[data-team-id="{team_id}"]')
        expect(row).to_have_count(1)
        figures = next(t for t in admin["teams"] if t["team_id"] == team_id)
        expect(row.locator("td").nth(1)).to_have_text(str(figures["jobs"]))
    shot = screenshot(page, f"overview-admin-{site.backend}")
    if site.backend == "sqlite":
        shutil.copy(shot, ARTIFACTS / "dashboard-overview-admin.png")
    page.goto(f"{site.base_url}/dashboard/jobs")
    expect(page.locator("#jobs-table th", has_text="Team")).to_have_count(1)
    expect(page.locator("#submit-form")).to_have_count(0)


def test_the_live_list_adds_a_job_submitted_elsewhere(site: Site, page: Any) -> None:
    _, key = site.new_team()
    sign_in(page, site, key)
    page.goto(f"{site.base_url}/dashboard/jobs")
    expect(page.locator("#jobs-table tbody tr.empty")).to_have_count(1)
    page.evaluate("window.__sameDocument = 'yes'")
    job_id = api_job(site, key)  # e.g. from a script using the API
    row = page.locator(f'tr[data-job-id="{job_id}"]')
    expect(row.locator('[data-role="status"]')).to_have_text("queued")
    expect(row.locator("a")).to_have_attribute("href", f"/dashboard/jobs/{job_id}")
    expect(page.locator("#jobs-table tbody tr.empty")).to_have_count(0)
    assert page.evaluate("window.__sameDocument") == "yes"


def test_a_bad_upload_names_its_line_and_a_refused_job_keeps_its_data_set(site: Site,
                                                                          page: Any) -> None:
    _, key = site.new_team()
    sign_in(page, site, key)
    page.goto(f"{site.base_url}/dashboard/jobs")
    page.set_input_files("#dataset_file", files=[{
        "name": "bad.jsonl", "mimeType": "application/json",
        "buffer": b'{"source": "a", "target": "b"}\n{"source": "c"}\n'}])
    page.click("#submit-job")
    expect(page.locator('.field-error[data-field="dataset_file"]')).to_have_text(
        "line 2: missing field 'target'")
    page.set_input_files("#dataset_file", files=[{
        "name": "good.jsonl", "mimeType": "application/json",
        "buffer": "\n".join(json.dumps(r) for r in ROWS).encode()}])
    page.fill("#rho", "1.5")
    page.click("#submit-job")
    expect(page.locator('.field-error[data-field="rho_policy.rho"]')).to_contain_text(
        "rho_policy.rho: Input should be less than or equal to 1")
    stored = api(site, key, "/datasets")["data"]
    assert len(stored) == 1
    expect(page.locator("#training_dataset")).to_have_value(stored[0]["id"])


def test_the_job_page_draws_new_epochs_without_a_reload(site: Site, page: Any) -> None:
    _, job_id = open_new_job(page, site)
    page.evaluate("window.__sameDocument = 'yes'")
    worker = site.worker(epochs=2, epoch_delay_s=0.8, wait_s=0.2)
    thread = worker.start(job_id)
    expect(page.locator("#job-status")).to_have_text("running", timeout=15_000)
    expect(page.locator('#chart-flops .pt[data-series="executed"]')).to_have_count(
        1, timeout=15_000)
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=15_000)
    expect(page.locator('#chart-flops .pt[data-series="executed"]')).to_have_count(2)
    expect(page.locator("#cancel-job")).to_have_count(0)
    thread.join(timeout=10)
    assert worker.error is None and page.evaluate("window.__sameDocument") == "yes"
