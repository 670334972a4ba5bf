"""Teams and access: every request authenticated, admin-only team management, keys hashed and
revocable, quotas stored and their use reported."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from sqlalchemy import select

from greentrainer_core.config import EpochRecord
from service.job_records import EpochMeasurement, record_epoch
from service.models import ApiKey, Job, utcnow
from tests.service.conftest import Api


def test_requests_without_a_valid_key_are_401(api: Api) -> None:
    for headers in ({}, {"Authorization": "Bearer gt_not-a-key"}, {"Authorization": "Basic x"}):
        r = api.client.get("/jobs", headers=headers)
        assert r.status_code == 401, r.text
        assert r.json()["error"]["field"] == "Authorization"


def test_admin_creates_a_team_whose_key_works_and_is_stored_hashed(api: Api) -> None:
    r = api.client.post("/teams", headers=api.admin,
                        json={"name": f"nlp-{api.backend}", "max_concurrent_jobs": 3,
                              "monthly_co2_budget_kg": 12.5})
    assert r.status_code == 201, r.text
    body = r.json()
    key = body["api_key"]["key"]
    assert body["max_concurrent_jobs"] == 3 and body["monthly_co2_budget_kg"] == 12.5
    me = api.client.get("/me", headers={"Authorization": f"Bearer {key}"})
    assert me.json() == {"team_id": body["id"], "is_admin": False}
    with api.factory() as session:
        stored = session.scalar(select(ApiKey).where(ApiKey.team_id == body["id"]))
    assert stored is not None and stored.key_sha256 == hashlib.sha256(key.encode()).hexdigest()
    assert key not in (stored.key_sha256, stored.prefix)


def test_team_keys_cannot_manage_teams(api: Api) -> None:
    team = api.new_team()
    assert api.client.post("/teams", json={"name": "x"}, headers=team).status_code == 403
    assert api.client.get("/teams", headers=team).status_code == 403


def test_admin_keys_cannot_submit_jobs(api: Api) -> None:
    r = api.client.post("/jobs", headers=api.admin,
                        json={"model": "smollm2-135m-instruct", "training_dataset": "ds_x"})
    assert r.status_code == 403 and "team API key" in r.json()["error"]["message"]


def test_duplicate_team_name_is_409_naming_the_field(api: Api) -> None:
    name = f"dup-{api.backend}"
    assert api.client.post("/teams", json={"name": name}, headers=api.admin).status_code == 201
    r = api.client.post("/teams", json={"name": name}, headers=api.admin)
    assert r.status_code == 409 and r.json()["error"]["field"] == "name"


def test_quotas_can_be_changed_and_are_listed(api: Api) -> None:
    team = api.new_team()
    r = api.client.patch(f"/teams/{team['X-Team-Id']}", headers=api.admin,
                         json={"max_concurrent_jobs": 7, "monthly_co2_budget_kg": 0.5})
    assert r.status_code == 200 and r.json()["max_concurrent_jobs"] == 7
    listed = {t["id"]: t for t in api.client.get("/teams", headers=api.admin).json()}
    assert listed[team["X-Team-Id"]]["monthly_co2_budget_kg"] == 0.5
    bad = api.client.patch(f"/teams/{team['X-Team-Id']}", headers=api.admin,
                           json={"max_concurrent_jobs": 0})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "max_concurrent_jobs"


def test_a_revoked_key_stops_working_and_a_new_key_works(api: Api) -> None:
    team = api.new_team()
    team_id = team["X-Team-Id"]
    r = api.client.post(f"/teams/{team_id}/keys", headers=api.admin)
    assert r.status_code == 201
    second = {"Authorization": f"Bearer {r.json()['key']}"}
    assert api.client.get("/me", headers=second).status_code == 200
    assert api.client.delete(f"/teams/{team_id}/keys/{r.json()['id']}",
                             headers=api.admin).status_code == 204
    assert api.client.get("/me", headers=second).status_code == 401
    assert api.client.get("/me", headers=team).status_code == 200


def test_a_team_reads_itself_but_another_team_is_404(api: Api) -> None:
    a, b = api.new_team(), api.new_team()
    assert api.client.get(f"/teams/{a['X-Team-Id']}", headers=a).status_code == 200
    assert api.client.get(f"/teams/{a['X-Team-Id']}", headers=b).status_code == 404


def test_team_usage_counts_active_jobs_and_this_months_co2(api: Api) -> None:
    team = api.new_team(max_concurrent_jobs=2, monthly_co2_budget_kg=1.0)
    running, cancelled = api.job_id(team), api.job_id(team)
    api.client.post(f"/jobs/{cancelled}/cancel", headers=team)
    with api.factory() as session:
        job = session.get_one(Job, running)
        for index, kg, when in [(0, 0.25, utcnow()), (1, 0.5, utcnow() - timedelta(days=40))]:
            row, _ = record_epoch(session, job, EpochRecord(
                epoch=index, rho=0.5, selected=["lm_head.weight"], predicted_flops=1,
                executed_flops=1, full_flops=2, wall_s=1.0), EpochMeasurement(kg_co2=kg))
            row.created_at = when  # the second epoch belongs to an earlier month
        session.commit()
    own = api.client.get(f"/teams/{team['X-Team-Id']}", headers=team).json()
    assert own["usage"] == {"active_jobs": 1, "co2_kg_this_month": 0.25}
    listed = {t["id"]: t for t in api.client.get("/teams", headers=api.admin).json()}
    assert listed[team["X-Team-Id"]]["usage"] == own["usage"]
