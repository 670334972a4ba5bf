"""The dashboard in a real headless Chromium (Debian's, driven by Playwright): sign in, upload a
data set and submit a job through the form, watch the real worker run it to `succeeded` without
reloading, read its charts against the epoch rows the worker wrote, sign out; a deadline job
waits for green and is cancelled, or paused and resumed, with a carbon pause's planned restart
shown; and one team cannot open another team's job page."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime, timedelta
from typing import Any

from playwright.sync_api import expect

from tests.core.tiny import ROWS
from tests.dashboard.conftest import ARTIFACTS, Embedded, Site, screenshot
from tests.dashboard.helpers import api_job
from tests.dashboard.recorded_runs import record_run
from tests.e2e.conftest import SUBMITTED_G_PER_KWH


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


def test_a_job_submitted_in_the_browser_runs_on_the_real_worker_and_is_drawn(
        embedded: Embedded, page: Any) -> None:
    site, stack = embedded
    _, key = site.new_team()
    test_set = stack.dataset({"Authorization": f"Bearer {key}"}, rows=4)
    sign_in(page, site, key)
    jobs_list = page.context.new_page()  # the live list, open before the job exists
    jobs_list.goto(f"{site.base_url}/dashboard/jobs")
    jobs_list.evaluate("window.__sameDocument = 'yes'")

    page.goto(f"{site.base_url}/dashboard/jobs")
    page.set_input_files("#dataset_file", files=[{
        "name": "dialogues.jsonl", "mimeType": "application/json",
        "buffer": "\n".join(json.dumps({"source": s, "target": t}) for s, t in ROWS).encode()}])
    page.fill("#model", str(stack.model_dir))
    page.select_option("#test_dataset", test_set)
    page.select_option("#method", "greentrainer")
    page.fill("#epochs", "3")
    page.select_option("#rho_type", "carbon-aware")
    page.fill("#rho_min", "0.3")
    page.fill("#rho_max", "1.0")
    page.fill("#region", "GB")
    page.fill("#co2_budget_kg", "0.5")
    page.check("#allow_low_rho")  # rho_min 0.3 is below the quality floor
    page.click("#submit-job")
    expect(page).to_have_url(re.compile(r"/dashboard/jobs/job_[0-9a-f]+$"))
    job_id = page.url.rsplit("/", 1)[1]
    job = api(site, key, f"/jobs/{job_id}")
    assert job["rho_policy"]["type"] == "carbon-aware" and job["model"] == str(stack.model_dir)
    assert job["test_dataset"] == test_set
    assert job["rho_policy"]["rho_min"] == 0.3 and job["rho_policy"]["co2_budget_kg"] == 0.5

    # The job page draws the worker's epochs as they are recorded, with no reload. (A short job
    # may finish between two updates of the page, so 'succeeded' with points counts too.)
    page.evaluate("window.__sameDocument = 'yes'")
    # A function, not an expression: Playwright evaluates an expression with eval(), which the
    # dashboard's Content-Security-Policy (no 'unsafe-eval') refuses.
    page.wait_for_function(
        "() => ['running', 'succeeded'].includes(document.querySelector('#job-status').textContent.trim()) && "
        "document.querySelectorAll('#chart-flops .pt[data-series=\"executed\"]').length >= 1",
        timeout=120_000)
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=120_000)
    assert page.evaluate("window.__sameDocument") == "yes"
    expect(page.locator("#cancel-job")).to_have_count(0)
    status = jobs_list.locator(f'tr[data-job-id="{job_id}"] [data-role="status"]')
    expect(status).to_have_text("succeeded")
    expect(jobs_list.locator(f'tr[data-job-id="{job_id}"] [data-role="epochs"]')).to_have_text("3")
    assert jobs_list.evaluate("window.__sameDocument") == "yes"
    screenshot(jobs_list, "jobs-embedded")

    # The charts are drawn from the epoch rows the worker wrote.
    epochs = api(site, key, f"/jobs/{job_id}/epochs")
    assert [e["epoch_index"] for e in epochs] == [0, 1, 2]
    page.reload()
    assert raws(page, '#chart-carbon .pt[data-series="rho"]') == [e["rho"] for e in epochs]
    assert raws(page, '#chart-carbon .pt[data-series="carbon intensity (g/kWh)"]') == [
        e["carbon_intensity_g_per_kwh"] for e in epochs]
    assert raws(page, '#chart-flops .pt[data-series="executed"]') == [
        e["executed_flops"] for e in epochs]
    assert raws(page, '#chart-flops .pt[data-series="full fine-tuning"]') == [
        e["full_ft_flops"] for e in epochs]
    assert raws(page, '#chart-energy rect.pt') == [e["energy_kwh"] for e in epochs]
    assert all(e["energy_kwh"] > 0 for e in epochs)
    assert raws(page, '#chart-loss .pt[data-series="loss"]') == [e["loss"] for e in epochs]
    for epoch in epochs:
        trained = page.eval_on_selector_all(
            f'#chart-tensors rect.cell[data-col="{epoch["epoch_index"]}"]',
            "cells => cells.reduce((n, c) => n + Number(c.dataset.selected), 0)")
        assert trained == epoch["selected_tensor_count"]
    rouge = api(site, key, f"/jobs/{job_id}")["result"]["rouge"]
    for name in ("rouge1", "rouge2", "rougeL"):
        expect(page.locator(f'[data-metric="rouge.{name}"]')).to_have_text(f"{rouge[name]:.4f}")
    expect(page.locator("#result [data-metric]")).to_have_count(3)  # scores, not the totals
    artifacts = api(site, key, f"/jobs/{job_id}/artifacts")
    assert {a["kind"] for a in artifacts} >= {"model", "delta", "metrics"}
    links = page.locator("#artifacts a")
    assert links.count() == len(artifacts)
    for index in range(links.count()):
        download = page.request.get(site.base_url + links.nth(index).get_attribute("href"))
        assert download.status == 200
        assert len(download.body()) in {a["size_bytes"] for a in artifacts}
    series = api(site, key, f"/jobs/{job_id}/series")
    assert series["reference_source"] == "submission"
    assert series["reference_g_per_kwh"] == SUBMITTED_G_PER_KWH  # noted by the scheduler loop
    # The worker ran at the static GB average, below the intensity noted at submission.
    assert series["totals"]["saved_by_cleaner_time_kg"] > 0
    job_shot = screenshot(page, "job-embedded")

    page.goto(f"{site.base_url}/dashboard")
    totals = api(site, key, "/stats/overview")["totals"]
    shown = page.eval_on_selector_all("#totals [data-value]", "n => n.map(e => e.dataset.value)")
    assert [float(v) for v in shown] == [
        totals[k] for k in ("executed_flops", "energy_kwh", "kg_co2", "saved_kg",
                            "saved_by_fewer_flops_kg", "saved_by_cleaner_time_kg")]
    assert raws(page, '#chart-overview-flops .pt[data-series="executed"]') == [
        b["executed_flops"] for b in api(site, key, "/stats/overview")["series"]]
    expect(page.locator("#offline-label")).to_contain_text("offline fallback")
    screenshot(page, "overview-embedded")
    shutil.copy(job_shot, ARTIFACTS / "dashboard-job.png")

    page.click("#sign-out")
    expect(page).to_have_url(f"{site.base_url}/dashboard/login")
    page.goto(f"{site.base_url}/dashboard/jobs/{job_id}")
    expect(page).to_have_url(f"{site.base_url}/dashboard/login")


def _waiting_deadline_job(embedded: Embedded, page: Any) -> tuple[str, str]:
    """(team key, job id) of a deadline job whose page shows it waiting for green, signed in."""
    site, stack = embedded
    _, key = site.new_team()
    deadline = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    job_id = stack.submit({"Authorization": f"Bearer {key}"}, rho_policy={
        "type": "carbon-aware", "rho_min": 0.4, "rho_max": 1.0, "region": "GB",
        "deadline": deadline, "allow_low_rho": True})
    sign_in(page, site, key)
    page.goto(f"{site.base_url}/dashboard/jobs/{job_id}")
    # The loop's forecast is dirty for four hours: the planner parks the job.
    expect(page.locator("#job-status")).to_have_text("waiting_for_green", timeout=30_000)
    return key, job_id


def test_a_deadline_job_waits_for_green_and_is_cancelled_in_the_browser(
        embedded: Embedded, page: Any) -> None:
    site = embedded.site
    key, job_id = _waiting_deadline_job(embedded, page)
    planned = api(site, key, f"/jobs/{job_id}")["planned_start_at"]
    assert datetime.fromisoformat(planned) > datetime.now(UTC) + timedelta(hours=3)
    expect(page.locator("#events")).to_contain_text(
        f"waiting for a greener window starting {planned[:16]}")
    page.click("#cancel-job")
    expect(page.locator("#job-status")).to_have_text("cancelled")
    assert api(site, key, f"/jobs/{job_id}")["status"] == "cancelled"


def test_a_job_is_paused_and_resumed_in_the_browser_and_shows_a_carbon_pause(
        embedded: Embedded, page: Any) -> None:
    from service.models import Job
    from service.pausing import PauseReason, request_pause

    site, stack = embedded
    key, job_id = _waiting_deadline_job(embedded, page)
    page.click("#pause-job")
    expect(page.locator("#job-status")).to_have_text("paused")
    expect(page.locator("#job-pause")).to_contain_text("Paused by the team")
    expect(page.locator("#job-pause")).to_contain_text("waits until it is resumed")
    assert api(site, key, f"/jobs/{job_id}")["pause"]["reason"] == "user"
    page.click("#resume-job")  # re-queued: the planner parks it again for its green window
    expect(page.locator("#job-status")).to_have_text("waiting_for_green", timeout=30_000)
    expect(page.locator("#job-pause")).to_have_count(0)
    restart = datetime.now(UTC) + timedelta(hours=6)
    with stack.factory() as session:  # as the worker's carbon plan asks
        request_pause(session, session.get_one(Job, job_id), reason=PauseReason.CARBON,
                      resume_at=restart)
        session.commit()
    page.reload()
    expect(page.locator("#job-status")).to_have_text("paused")
    expect(page.locator("#job-pause")).to_contain_text("the carbon plan")
    expect(page.locator("#job-pause")).to_contain_text("Planned restart")
    assert datetime.fromisoformat(api(site, key, f"/jobs/{job_id}")["pause"]["resume_at"]) \
        == restart
    screenshot(page, "job-paused")
    page.click("#resume-job")  # the team ends the carbon pause early
    expect(page.locator("#job-status")).to_have_text("waiting_for_green", timeout=30_000)


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
        record_run(site.factory, api_job(site, key), epochs=2 + index)
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
        "buffer": "\n".join(json.dumps({"source": s, "target": t}) for s, t in ROWS).encode()}])
    page.fill("#rho", "1.5")
    page.click("#submit-job")
    expect(page.locator('.field-error[data-field="rho_policy.rho"]')).to_contain_text(
        "rho_policy.rho: Input should be less than or equal to 1")
    stored = api(site, key, "/datasets")["data"]
    assert len(stored) == 1
    expect(page.locator("#training_dataset")).to_have_value(stored[0]["id"])
