"""`GET /stats/overview`, `GET /jobs/{id}/series` and `GET /stats/carbon`: the figures the
dashboard draws, scoped like every other API read (a team sees its own, an admin all)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update
from starlette.datastructures import State

from greentrainer_carbon import CarbonSettings
from service.db import session_scope
from service.grid import app_outlook
from service.models import JobEpoch, utcnow
from tests.dashboard.conftest import Site
from tests.dashboard.helpers import api_job, signed_in_client
from tests.dashboard.recorded_runs import record_run


def get(site: Site, key: str | None, path: str, status: int = 200) -> Any:
    headers = site.admin_headers if key is None else {"Authorization": f"Bearer {key}"}
    r = site.client.get(path, headers=headers)
    assert r.status_code == status, r.text
    return r.json()


def test_overview_totals_are_the_sums_of_the_teams_epoch_rows(site: Site) -> None:
    team_a, key_a = site.new_team()
    team_b, key_b = site.new_team()
    job = api_job(site, key_a)
    recorded = record_run(site.factory, job, submitted_g_per_kwh=300.0)
    api_job(site, key_b)  # a job without epochs counts as a job, with no figures

    rows = get(site, key_a, f"/jobs/{job}/epochs")
    totals = get(site, key_a, "/stats/overview")["totals"]
    assert totals["jobs"] == 1 and totals["epochs"] == len(rows) == len(recorded)
    assert totals["executed_flops"] == pytest.approx(sum(r["executed_flops"] for r in rows))
    assert totals["full_ft_flops"] == pytest.approx(sum(r["full_ft_flops"] for r in rows))
    assert totals["energy_kwh"] == pytest.approx(sum(r["energy_kwh"] for r in rows))
    assert totals["kg_co2"] == pytest.approx(sum(r["kg_co2"] for r in rows))
    full_energy = [r["energy_kwh"] * r["full_ft_flops"] / r["executed_flops"] for r in rows]
    used = sum(e * r["carbon_intensity_g_per_kwh"] / 1000 for e, r in zip(full_energy, rows,
                                                                           strict=True))
    assert totals["saved_by_fewer_flops_kg"] == pytest.approx(used - totals["kg_co2"])
    assert totals["saved_by_cleaner_time_kg"] == pytest.approx(sum(full_energy) * 0.3 - used)
    assert get(site, key_a, "/stats/overview")["teams"] == []

    other = get(site, key_b, "/stats/overview")["totals"]
    assert other["jobs"] == 1 and other["epochs"] == 0 and other["kg_co2"] == 0

    admin = get(site, None, "/stats/overview")
    by_team = {row["team_id"]: row for row in admin["teams"]}
    assert by_team[team_a]["kg_co2"] == pytest.approx(totals["kg_co2"])
    assert by_team[team_b]["jobs"] == 1 and by_team[team_b]["epochs"] == 0
    one = get(site, None, f"/stats/overview?team_id={team_a}")["totals"]
    assert one["saved_kg"] == pytest.approx(totals["saved_kg"])
    get(site, None, "/stats/overview?team_id=team_missing", status=404)


def test_series_has_one_point_per_epoch_and_is_hidden_from_other_teams(site: Site) -> None:
    _, key_a = site.new_team()
    _, key_b = site.new_team()
    job = api_job(site, key_a)
    record_run(site.factory, job)
    series = get(site, key_a, f"/jobs/{job}/series")
    rows = get(site, key_a, f"/jobs/{job}/epochs")
    assert [p["rho"] for p in series["epochs"]] == [r["rho"] for r in rows]
    assert series["reference_source"] == "submission"
    assert series["reference_g_per_kwh"] == 240.0
    missing = get(site, key_b, f"/jobs/{job}/series", status=404)
    assert missing["error"]["code"] == "not_found"


def test_grid_outlook_offline_is_labelled_a_fallback(site: Site) -> None:
    _, key = site.new_team()
    carbon = get(site, key, "/stats/carbon")
    assert carbon["offline_fallback"] is True
    assert carbon["source"].startswith("codecarbon-static")
    assert carbon["current"]["carbon_intensity_g_per_kwh"] > 0 and carbon["forecast"]


def test_the_live_list_serves_the_api_job_list(site: Site) -> None:
    _, key = site.new_team()
    jobs = [api_job(site, key) for _ in range(2)]
    record_run(site.factory, jobs[0])
    listed = get(site, key, "/jobs")["data"]
    with signed_in_client(site, key) as (client, _):
        live = client.get("/dashboard/api/jobs").json()["data"]
    assert live == listed and {j["id"] for j in live} == set(jobs)


def test_misconfigured_providers_fall_back_to_the_static_average_with_a_note() -> None:
    outlook = app_outlook(State(), CarbonSettings(providers="electricitymaps"))
    assert outlook.offline_fallback and outlook.current is not None
    assert "GREENTRAINER_CARBON__ELECTRICITYMAPS_TOKEN" in outlook.notes[0]


def test_series_buckets_are_hourly_up_to_two_days_then_daily(site: Site) -> None:
    _, key = site.new_team()
    job = api_job(site, key)
    record_run(site.factory, job, epochs=3)
    hourly = get(site, key, "/stats/overview")
    assert hourly["bucket"] == "hour" and sum(b["epochs"] for b in hourly["series"]) == 3
    start = utcnow().replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=5)
    with session_scope(site.factory) as session:
        for index in range(3):  # epochs on day 0, day 2 and day 4
            session.execute(update(JobEpoch).where(JobEpoch.job_id == job,
                                                   JobEpoch.epoch_index == index)
                            .values(created_at=start + timedelta(days=2 * index)))
    daily = get(site, key, "/stats/overview")
    assert daily["bucket"] == "day"
    assert [b["start"][:10] for b in daily["series"]] == [
        (start + timedelta(days=2 * i)).date().isoformat() for i in range(3)]
    assert [b["epochs"] for b in daily["series"]] == [1, 1, 1]
    assert sum(b["kg_co2"] for b in daily["series"]) == pytest.approx(daily["totals"]["kg_co2"])
