"""The seams to the scheduler and the worker: extra submission checks (a refusing check is a 422
naming its field, nothing recorded or dispatched) and the dispatcher (its failure never fails
or loses a committed job)."""

from __future__ import annotations

import logging

import httpx
import pytest
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
    policy = {"type": "carbon-aware", "rho_min": 0.3, "rho_max": 0.9, "region": "GB",
              "allow_low_rho": True}
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


class BrokenDispatcher:
    def job_queued(self, job_id: str) -> None:
        raise ConnectionError("broker down")

    def job_cancelled(self, job_id: str) -> None:
        raise ConnectionError("broker down")


def test_a_failing_dispatcher_does_not_lose_or_fail_the_request(
        api: Api, caplog: pytest.LogCaptureFixture) -> None:
    team = api.new_team()
    dataset = api.upload(team)
    app = create_app(api.settings, dispatcher=BrokenDispatcher())
    try:
        with LiveServer(app) as server, httpx.Client(base_url=server.base_url) as client:
            with caplog.at_level(logging.ERROR, logger="service.dispatch"):
                created = client.post("/jobs", headers=team, json={
                    "model": "smollm2-135m-instruct", "training_dataset": dataset})
                cancelled = client.post(f"/jobs/{created.json()['id']}/cancel", headers=team)
    finally:
        app.state.context.engine.dispose()
    assert created.status_code == 201 and cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert [r.job_id for r in caplog.records] == [created.json()["id"]] * 2  # type: ignore[attr-defined]
