"""Postgres goes away under a running API (a private cluster, stopped with `pg_ctl -m
immediate`): every request is answered 503 with Retry-After and a JSON error, never a stack
trace, and the API recovers by itself when the database is back, with nothing lost."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from tests.hardening.conftest import live_api
from tests.hardening.private_services import PrivatePostgres
from tests.service.conftest import Api


def _assert_503(r: object) -> None:
    import httpx
    assert isinstance(r, httpx.Response)
    assert r.status_code == 503, r.text[:300]
    assert int(r.headers["Retry-After"]) >= 1
    assert r.json()["error"]["code"] == "database_unavailable"
    assert "Traceback" not in r.text and "psycopg" not in r.text


def test_a_database_outage_is_503_with_retry_after_and_recovers_by_itself(
        pg: PrivatePostgres, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = pg.create_database("gt_fault")
    with live_api(tmp_path, database_url=url, db_pool_timeout_seconds=2) as api:
        team = api.new_team()
        dataset = api.upload(team)
        before = api.job_id(team, dataset=dataset)
        for outage in range(3):  # repeated outages, each followed by recovery
            pg.stop()
            caplog.clear()
            _assert_503(api.client.get("/jobs", headers=team))
            _assert_503(api.client.get(f"/jobs/{before}", headers=team))
            _assert_503(api.submit(team, dataset=dataset,
                                   headers={"Idempotency-Key": f"outage-{outage}"}))
            _assert_503(api.client.post("/datasets", files={"file": ("d.jsonl", b'{"source":'
                                        b'"a","target":"b"}')}, headers=team))
            assert "Traceback" not in caplog.text and "unhandled error" not in caplog.text
            assert api.client.get("/readyz").status_code == 503
            assert api.client.get("/healthz").status_code == 200  # the process itself is alive
            pg.start()
            _wait_until_ok(api, team)
            # The submission that got a 503 is retried with the same key: recorded once.
            r = api.submit(team, dataset=dataset, headers={"Idempotency-Key": f"outage-{outage}"})
            assert r.status_code == 201, r.text
        jobs = api.client.get("/jobs", headers=team, params={"limit": 100}).json()["data"]
        assert len(jobs) == 4 and before in {j["id"] for j in jobs}


def _wait_until_ok(api: Api, team: dict[str, str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    statuses = []
    while time.monotonic() < deadline:
        r = api.client.get("/jobs", headers=team)
        statuses.append(r.status_code)
        if r.status_code == 200:
            return
        assert r.status_code == 503, r.text[:300]
        time.sleep(0.2)
    raise AssertionError(f"API did not recover in {timeout} s: {statuses[-10:]}")


@pytest.fixture(autouse=True)
def _quiet(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
