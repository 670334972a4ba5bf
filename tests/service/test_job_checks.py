"""Extra submission checks (the scheduler's seam): a check that refuses a job gives a 422 naming
its field and nothing is recorded or dispatched; a passing check lets the job through."""

from __future__ import annotations

import httpx
from sqlalchemy.orm import Session

from service.app import create_app
from service.dispatch import RecordingDispatcher
from service.errors import InvalidInput
from service.schemas import CarbonAwareRho, JobCreate
from tests.service.conftest import Api, LiveServer


def budget_check(session: Session, team_id: str, request: JobCreate) -> None:
    policy = request.rho_policy
    if isinstance(policy, CarbonAwareRho) and policy.co2_budget_kg is not None \
            and policy.co2_budget_kg < 0.01:
        raise InvalidInput(f"rho_policy.co2_budget_kg: {policy.co2_budget_kg} kg cannot be met "
                           "even at rho_min", field="rho_policy.co2_budget_kg")


def test_a_refusing_check_is_a_422_and_records_nothing(api: Api) -> None:
    team = api.new_team()
    dataset = api.upload(team)
    dispatcher = RecordingDispatcher()
    app = create_app(api.settings, dispatcher=dispatcher, job_checks=[budget_check])
    policy = {"type": "carbon-aware", "rho_min": 0.3, "rho_max": 0.9, "region": "GB"}
    try:
        with LiveServer(app) as server, httpx.Client(base_url=server.base_url) as client:
            body = {"model": "smollm2-135m-instruct", "training_dataset": dataset}
            refused = client.post("/jobs", headers=team, json={
                **body, "rho_policy": {**policy, "co2_budget_kg": 0.001}})
            accepted = client.post("/jobs", headers=team, json={
                **body, "rho_policy": {**policy, "co2_budget_kg": 2.0}})
            listed = client.get("/jobs", headers=team).json()["data"]
    finally:
        app.state.context.engine.dispose()
    assert refused.status_code == 422
    assert refused.json()["error"]["field"] == "rho_policy.co2_budget_kg"
    assert accepted.status_code == 201
    assert [j["id"] for j in listed] == [accepted.json()["id"]]
    assert dispatcher.calls == [("queued", accepted.json()["id"])]
