"""Webhooks per team, as a user's endpoint sees them: a real receiver on loopback verifies the
Standard Webhooks signature of every delivery with the `standardwebhooks` library; failed tries
are retried with backoff and logged, visible through the API; endpoints are per team; targets
on private addresses are refused unless the deployment allows them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.app import create_app
from service.db import make_engine, make_session_factory, upgrade
from service.dispatch import RecordingDispatcher
from service.jobs import transition
from service.models import Job
from service.settings import Settings, WebhookSettings
from service.states import JobStatus
from service.webhooks import notify_job_event
from service.webhooks.sender import deliver_due
from tests.service.conftest import ADMIN_KEY, Api, LiveServer
from tests.service.webhook_receiver import Receiver

HOOKS = WebhookSettings(allow_private_targets=True, backoff_seconds=0.3, max_attempts=3,
                        timeout_seconds=5)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def hooks_api(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The API of a deployment that allows private webhook targets (the loopback receiver)."""
    root = tmp_path_factory.mktemp(f"hooks-{request.param}")
    url = f"sqlite:///{root / 'api.sqlite'}" if request.param == "sqlite" else \
        request.getfixturevalue("postgres").create()
    upgrade(url)
    settings = Settings(database_url=url, data_dir=root / "data", admin_key=ADMIN_KEY,
                        hf_cache_dir=root / "hf-cache", webhooks=HOOKS)
    app = create_app(settings, dispatcher=RecordingDispatcher())
    with LiveServer(app) as server, httpx.Client(base_url=server.base_url, timeout=30) as client:
        yield Api(client=client, settings=settings, dispatcher=RecordingDispatcher(),
                  factory=make_session_factory(make_engine(url)), backend=request.param,
                  app=app)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def _endpoint(api: Api, team: dict[str, str], receiver: Receiver, path: str,
              **body: Any) -> dict[str, Any]:
    r = api.client.post("/webhooks", json={"url": receiver.url(path), **body}, headers=team)
    assert r.status_code == 201, r.text
    receiver.secrets[path] = r.json()["secret"]
    return dict(r.json())


def _finish(api: Api, job_id: str, *targets: JobStatus, **values: Any) -> None:
    """Move a job as the worker does (`service.jobs.transition`), one committed step each."""
    for target in targets:
        with api.factory.begin() as session:
            transition(session, session.get_one(Job, job_id), target, **values)


def _deliveries(api: Api, team: dict[str, str], endpoint_id: str) -> list[dict[str, Any]]:
    r = api.client.get(f"/webhooks/{endpoint_id}/deliveries", headers=team)
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


def test_a_finished_job_is_delivered_signed_and_the_delivery_is_logged(
        hooks_api: Api, receiver: Receiver) -> None:
    api, team = hooks_api, hooks_api.new_team()
    endpoint = _endpoint(api, team, receiver, "/ok", description="CI")
    assert endpoint["secret"].startswith("whsec_")
    job_id = api.job_id(team)
    _finish(api, job_id, JobStatus.RUNNING, JobStatus.SUCCEEDED, result={"kg_co2": 0.002})
    assert receiver.at("/ok") == []  # nothing is sent in the request that finished the job
    assert set(deliver_due(api.factory, HOOKS).values()) == {"succeeded"}
    [got] = receiver.at("/ok")
    assert got.error is None, got.error  # the standardwebhooks library verified it
    assert got.verified["type"] == "job.succeeded"
    assert got.verified["data"]["id"] == job_id
    assert got.verified["data"]["status"] == "succeeded"
    assert got.verified["data"]["result"] == {"kg_co2": 0.002}
    [delivery] = _deliveries(api, team, endpoint["id"])
    assert delivery["id"] == got.headers["webhook-id"]
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == \
        ("succeeded", 1, 200)
    assert [a["status_code"] for a in delivery["attempt_log"]] == [200]
    assert deliver_due(api.factory, HOOKS) == {}  # sent once


def test_a_failing_receiver_is_retried_with_backoff_until_it_answers(
        hooks_api: Api, receiver: Receiver) -> None:
    api, team = hooks_api, hooks_api.new_team()
    endpoint = _endpoint(api, team, receiver, "/flaky")
    receiver.answers["/flaky"].extend([500, 503])
    job_id = api.job_id(team)
    _finish(api, job_id, JobStatus.CANCELLED)
    assert set(deliver_due(api.factory, HOOKS).values()) == {"pending"}
    assert deliver_due(api.factory, HOOKS) == {}  # not due yet: it waits its backoff
    time.sleep(HOOKS.backoff_seconds * 1.2)
    assert set(deliver_due(api.factory, HOOKS).values()) == {"pending"}
    time.sleep(HOOKS.backoff_seconds * 1.2)
    assert deliver_due(api.factory, HOOKS) == {}  # the second wait is twice the first
    time.sleep(HOOKS.backoff_seconds * 1.2)
    assert set(deliver_due(api.factory, HOOKS).values()) == {"succeeded"}
    tries = receiver.at("/flaky")
    assert len(tries) == 3 and all(t.error is None for t in tries)
    assert {t.headers["webhook-id"] for t in tries} == {tries[0].headers["webhook-id"]}
    assert tries[0].verified["type"] == "job.cancelled"
    [delivery] = _deliveries(api, team, endpoint["id"])
    assert delivery["status"] == "succeeded" and delivery["attempts"] == 3
    assert [a["status_code"] for a in delivery["attempt_log"]] == [500, 503, 200]
    assert delivery["attempt_log"][0]["error"].startswith("HTTP 500")


def test_a_delivery_that_never_succeeds_fails_after_max_attempts(
        hooks_api: Api, receiver: Receiver) -> None:
    api, team = hooks_api, hooks_api.new_team()
    endpoint = _endpoint(api, team, receiver, "/down")
    receiver.answers["/down"].extend([500] * 10)
    _finish(api, api.job_id(team), JobStatus.FAILED, error_code="data_error",
            error_message="line 3: bad")
    for _ in range(HOOKS.max_attempts):
        deliver_due(api.factory, HOOKS)
        time.sleep(HOOKS.backoff_seconds * 4.2)
    assert deliver_due(api.factory, HOOKS) == {}
    [delivery] = _deliveries(api, team, endpoint["id"])
    assert (delivery["status"], delivery["attempts"]) == ("failed", HOOKS.max_attempts)
    assert len(receiver.at("/down")) == HOOKS.max_attempts
    assert receiver.at("/down")[0].verified["data"]["error"] == {"code": "data_error",
                                                                 "message": "line 3: bad"}


def test_endpoints_get_only_their_teams_events_of_the_types_they_chose(
        hooks_api: Api, receiver: Receiver) -> None:
    api, team, other = hooks_api, hooks_api.new_team(), hooks_api.new_team()
    failures = _endpoint(api, team, receiver, "/failures", event_types=["job.failed"])
    everything = _endpoint(api, other, receiver, "/other")
    _finish(api, api.job_id(team), JobStatus.CANCELLED)
    failed = api.job_id(team)
    _finish(api, failed, JobStatus.FAILED, error_code="x", error_message="y")
    paused = api.job_id(team)
    with api.factory.begin() as session:  # what the pause of a job calls
        assert notify_job_event(session, session.get_one(Job, paused), "job.paused") == 0
    deliver_due(api.factory, HOOKS)
    assert [r.verified["data"]["id"] for r in receiver.at("/failures")] == [failed]
    assert receiver.at("/other") == [] and _deliveries(api, other, everything["id"]) == []
    # Another team's endpoint is 404 everywhere, and not listed.
    for method, path in (("GET", ""), ("DELETE", ""), ("GET", "/deliveries")):
        r = api.client.request(method, f"/webhooks/{failures['id']}{path}", headers=other)
        assert r.status_code == 404, (method, path, r.text)
    assert [e["id"] for e in api.client.get("/webhooks", headers=other).json()] == \
        [everything["id"]]
    assert "secret" not in api.client.get(f"/webhooks/{failures['id']}", headers=team).json()
    assert api.client.delete(f"/webhooks/{failures['id']}", headers=team).status_code == 204
    assert api.client.get("/webhooks", headers=team).json() == []


def test_a_paused_job_is_announced(hooks_api: Api, receiver: Receiver) -> None:
    api, team = hooks_api, hooks_api.new_team()
    _endpoint(api, team, receiver, "/paused", event_types=["job.paused"])
    job_id = api.job_id(team)
    with api.factory.begin() as session:
        assert notify_job_event(session, session.get_one(Job, job_id), "job.paused") == 1
    deliver_due(api.factory, HOOKS)
    [got] = receiver.at("/paused")
    assert got.error is None and got.verified["type"] == "job.paused"


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8000/hook", "http://localhost/hook", "http://10.1.2.3/hook",
    "http://[::1]/hook", "http://169.254.169.254/latest/meta-data", "http://192.168.1.5/",
    "http://0.0.0.0/"])
def test_private_and_loopback_targets_are_refused_by_default(api: Api, url: str) -> None:
    r = api.client.post("/webhooks", json={"url": url}, headers=api.new_team())
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == "url"
    assert "ALLOW_PRIVATE_TARGETS" in r.json()["error"]["message"]


@pytest.mark.parametrize(("body", "field"), [
    ({"url": "ftp://example.com/x"}, "url"), ({"url": "not a url"}, "url"),
    ({"url": "https://user:pw@example.com/"}, "url"), ({}, "url"),
    ({"url": "https://example.com/", "event_types": ["job.exploded"]}, "event_types.0"),
    ({"url": "https://example.com/", "event_types": []}, "event_types"),
    ({"url": "https://example.com/", "colour": "green"}, "colour")])
def test_bad_endpoints_are_422_naming_the_field(api: Api, body: dict[str, Any],
                                                field: str) -> None:
    r = api.client.post("/webhooks", json=body, headers=api.new_team())
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field


def test_an_unknown_endpoint_is_404(api: Api) -> None:
    team = api.new_team()
    assert api.client.get("/webhooks/whe_nope", headers=team).status_code == 404
    assert api.client.delete("/webhooks/whe_nope", headers=team).status_code == 404


def test_the_migrations_create_the_webhook_tables(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.sqlite'}"
    upgrade(url)
    from sqlalchemy import inspect

    assert {"webhook_endpoints", "webhook_deliveries"} <= set(
        inspect(make_engine(url)).get_table_names())
