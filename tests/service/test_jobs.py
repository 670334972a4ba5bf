"""POST/GET /jobs: submission of every rho policy, the job object, cursor pagination, model
resolution, and 4xx errors that name the field for every bad input (never a 500)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.service.conftest import Api

FUTURE = (datetime.now(UTC) + timedelta(days=1)).isoformat()
PAST = (datetime.now(UTC) - timedelta(hours=1)).isoformat()

POLICIES = [
    {"type": "fixed", "rho": 0.6},
    {"type": "fixed", "rho": 1.0},
    {"type": "schedule", "rhos": [0.4, 0.7, 1.0], "allow_low_rho": True},
    {"type": "carbon-aware", "rho_min": 0.3, "rho_max": 0.9, "region": "GB", "deadline": FUTURE,
     "co2_budget_kg": 0.25, "allow_low_rho": True},
    {"type": "carbon-aware", "rho_min": 0.6, "rho_max": 0.6, "region": "FR"},
]


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: f"{p['type']}")
def test_submit_records_a_queued_job_and_dispatches_it_once(api: Api,
                                                            policy: dict[str, Any]) -> None:
    team = api.new_team()
    r = api.submit(team, method="greentrainer", rho_policy=policy,
                   hyperparameters={"epochs": 3, "batch_size": 2, "learning_rate": 1e-4})
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["status"] == "queued" and job["object"] == "job"
    assert job["team_id"] == team["X-Team-Id"] and job["model_source"] == "shipped"
    assert job["hyperparameters"]["batch_size"] == 2
    assert job["rho_policy"]["type"] == policy["type"]
    assert api.dispatcher.calls_for(job["id"]) == ["queued"]
    assert api.client.get(f"/jobs/{job['id']}", headers=team).json()["id"] == job["id"]
    events = api.client.get(f"/jobs/{job['id']}/events", headers=team).json()["data"]
    planned = ["carbon_plan"] if "co2_budget_kg" in policy else []  # a budget's checked plan
    assert [e["type"] for e in events] == ["created", "status", *planned]
    assert events[1]["data"] == {"from": "validating", "to": "queued"}


def test_validation_and_test_sets_are_recorded(api: Api) -> None:
    team = api.new_team()
    train, val, test = api.upload(team), api.upload(team), api.upload(team)
    job = api.submit(team, train, validation_dataset=val, test_dataset=test).json()
    assert (job["training_dataset"], job["validation_dataset"], job["test_dataset"]) == \
        (train, val, test)


def test_list_pages_newest_first_with_after_cursor(api: Api) -> None:
    team = api.new_team()
    dataset = api.upload(team)
    ids = [api.job_id(team, dataset=dataset) for _ in range(5)]
    seen, after = [], None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"after": after} if after else {})}
        page = api.client.get("/jobs", params=params, headers=team).json()
        seen += [j["id"] for j in page["data"]]
        after = page["last_id"]
        if not page["has_more"]:
            break
    assert seen == list(reversed(ids))


def test_list_filters_by_status(api: Api) -> None:
    team = api.new_team()
    job = api.job_id(team)
    api.client.post(f"/jobs/{job}/cancel", headers=team)
    queued = api.client.get("/jobs", params={"status": "queued"}, headers=team).json()["data"]
    cancelled = api.client.get("/jobs", params={"status": "cancelled"}, headers=team).json()
    assert queued == [] and [j["id"] for j in cancelled["data"]] == [job]


def test_a_local_model_under_an_allowed_dir_is_accepted(api: Api) -> None:
    model_dir = api.settings.allowed_model_dirs[0] / f"tiny-{api.backend}"
    model_dir.mkdir(exist_ok=True)
    (model_dir / "config.json").write_text(json.dumps({"model_type": "llama"}))
    team = api.new_team()
    r = api.submit(team, model=str(model_dir))
    assert r.status_code == 201, r.text
    assert r.json()["model_source"] == "local_path" and r.json()["model"] == str(model_dir)


def test_a_hugging_face_id_in_the_local_cache_is_accepted(api: Api) -> None:
    assert api.settings.hf_cache_dir is not None
    # The hub cache's layout: the snapshot of a revision, and refs/main naming it (what the
    # worker's loader resolves too, so the API accepts what the worker can load).
    repo = api.settings.hf_cache_dir / "models--acme--tiny-lm"
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True, exist_ok=True)
    (snapshot / "config.json").write_text("{}")
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text("abc123")
    r = api.submit(api.new_team(), model="acme/tiny-lm")
    assert r.status_code == 201, r.text
    assert r.json()["model_source"] == "hf_cache"


BAD = [
    ({"model": "gpt-17-ultra"}, "model", "unknown model"),
    ({"model": "acme/not-downloaded"}, "model", "not in the local Hugging Face cache"),
    ({"model": "/etc"}, "model", "not under an allowed model directory"),
    ({"model": ""}, "model", ""),
    ({"method": "dropout"}, "method", ""),
    ({"rho_policy": {"type": "fixed", "rho": 0}}, "rho_policy.rho", "greater than or equal to 0.001"),
    ({"rho_policy": {"type": "fixed", "rho": 1.5}}, "rho_policy.rho", "less than or equal to 1"),
    ({"rho_policy": {"type": "fixed", "rho": -0.2}}, "rho_policy.rho", ""),
    ({"rho_policy": {"type": "schedule", "rhos": [0.5, 1.2, 0.5]}}, "rho_policy.rhos.1", ""),
    ({"rho_policy": {"type": "schedule", "rhos": [0.6, 0.7]}}, "rho_policy.rhos",
     "one rho per epoch"),
    ({"rho_policy": {"type": "carbon-aware", "rho_min": 0.9, "rho_max": 0.4, "region": "GB"}},
     "rho_policy.rho_max", "rho_min (0.9) must not exceed rho_max (0.4)"),
    ({"rho_policy": {"type": "carbon-aware", "rho_min": 0.6, "rho_max": 0.8, "region": "GB",
                     "deadline": PAST}}, "rho_policy.deadline", "must be in the future"),
    ({"rho_policy": {"type": "carbon-aware", "rho_min": 0.6, "rho_max": 0.8, "region": "GB",
                     "co2_budget_kg": 0}}, "rho_policy.co2_budget_kg", ""),
    ({"rho_policy": {"type": "carbon-aware", "rho_min": 0.6, "rho_max": 0.8}},
     "rho_policy.region", "Field required"),
    ({"rho_policy": {"type": "greedy"}}, "rho_policy", ""),
    ({"training_dataset": "ds_does_not_exist"}, "training_dataset", "ds_does_not_exist"),
    ({"validation_dataset": "ds_nope"}, "validation_dataset", "ds_nope"),
    ({"test_dataset": "ds_nope"}, "test_dataset", "ds_nope"),
    ({"hyperparameters": {"epochs": 0}}, "hyperparameters.epochs", ""),
    ({"hyperparameters": {"learning_rate": "fast"}}, "hyperparameters.learning_rate", ""),
    ({"hyperparameters": {"epoch": 3}}, "hyperparameters.epoch", "Extra inputs"),
    ({"colour": "green"}, "colour", "Extra inputs"),
    ({"hyperparameters": {"early_stopping_patience": 2}}, "hyperparameters.early_stopping_patience",
     "needs a validation_dataset"),
    ({"hyperparameters": {"early_stopping_patience": 0}}, "hyperparameters.early_stopping_patience",
     "greater than or equal to 1"),
]


@pytest.mark.parametrize(("override", "field", "message"), BAD,
                         ids=[f"{f}:{json.dumps(o)[:40]}" for o, f, _ in BAD])
def test_bad_input_is_422_naming_the_field(api: Api, override: dict[str, Any], field: str,
                                           message: str) -> None:
    team = api.new_team()
    r = api.submit(team, **override)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["field"] == field, error
    assert message in error["message"] and field.split(".")[0] in error["message"]
    assert api.client.get("/jobs", headers=team).json()["data"] == [], "nothing recorded"


@pytest.mark.parametrize("body", ["not json", "[1, 2]", "{}"])
def test_a_malformed_body_is_422_not_500(api: Api, body: str) -> None:
    r = api.client.post("/jobs", content=body, headers={**api.new_team(),
                                                        "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"


def test_an_unknown_job_id_is_404(api: Api) -> None:
    r = api.client.get("/jobs/job_000000000000ffffffffffffffff", headers=api.new_team())
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_admin_lists_every_teams_jobs_or_one_teams(api: Api) -> None:
    a, b = api.new_team(), api.new_team()
    job_a, job_b = api.job_id(a), api.job_id(b)
    listed = api.client.get("/jobs", params={"limit": 100}, headers=api.admin).json()["data"]
    assert {job_a, job_b} <= {j["id"] for j in listed}
    only_a = api.client.get("/jobs", params={"team_id": a["X-Team-Id"]}, headers=api.admin)
    assert [j["id"] for j in only_a.json()["data"]] == [job_a]
    # A team key cannot widen its view with team_id.
    as_b = api.client.get("/jobs", params={"team_id": a["X-Team-Id"]}, headers=b)
    assert [j["id"] for j in as_b.json()["data"]] == [job_b]


def test_a_model_path_that_escapes_the_allowed_dir_is_refused(api: Api, tmp_path: Path) -> None:
    allowed = api.settings.allowed_model_dirs[0]
    r = api.submit(api.new_team(), model=str(allowed / ".." / ".." / "etc"))
    assert r.status_code == 422 and r.json()["error"]["field"] == "model"
