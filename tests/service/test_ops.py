"""Operations: /healthz, /readyz (database migrated and broker reachable, with a real Redis),
Prometheus /metrics with job and CO2 totals, OpenAPI docs at /docs."""

from __future__ import annotations

import re
import socket

import httpx
import pytest
import redis

from greentrainer_core.config import EpochRecord
from service.app import create_app
from service.db import pool_capacity
from service.job_records import EpochMeasurement, record_epoch
from service.models import Job
from tests.conftest import require
from tests.service.conftest import Api, LiveServer

REDIS_URL = "redis://127.0.0.1:6379/0"


def _redis_up() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_healthz_answers_without_a_key(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}


def test_readyz_in_embedded_mode_checks_the_database(api: Api) -> None:
    r = api.client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["checks"] == {"database": "ok", "broker": "embedded (no broker)"}


@pytest.mark.parametrize("broker", ["redis", "unreachable"])
def test_readyz_checks_the_broker(api: Api, broker: str) -> None:
    if broker == "redis":
        require(_redis_up(), "Redis on 127.0.0.1:6379")
        url = REDIS_URL
    else:
        url = f"redis://127.0.0.1:{_closed_port()}/0"
    app = create_app(api.settings.model_copy(update={"broker_url": url}))
    try:
        with LiveServer(app) as server:
            r = httpx.get(f"{server.base_url}/readyz", timeout=10)
    finally:
        app.state.context.engine.dispose()
    if broker == "redis":
        assert r.status_code == 200 and r.json()["checks"]["broker"] == "ok"
    else:
        assert r.status_code == 503 and "broker unreachable" in r.json()["checks"]["broker"]
        assert r.json()["checks"]["database"] == "ok"


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} missing from /metrics"
    return float(match.group(1))


def test_metrics_report_jobs_queue_flops_and_co2(api: Api) -> None:
    before = api.client.get("/metrics").text
    team = api.new_team()
    job_id = api.job_id(team)
    api.job_id(team)
    with api.factory() as session:
        record_epoch(session, session.get_one(Job, job_id), EpochRecord(
            epoch=0, rho=0.5, selected=["lm_head.weight"], predicted_flops=int(5e14),
            executed_flops=int(4e14), full_flops=int(1e15), wall_s=3.0),
            EpochMeasurement(energy_kwh=0.02, kg_co2=0.004))
        session.commit()
    after = api.client.get("/metrics").text
    assert after.startswith("# HELP") and "greentrainer_http_requests_total" in after
    queued = 'greentrainer_jobs{status="queued"}'
    assert _metric(after, queued) - _metric(before, queued) == 2
    assert _metric(after, "greentrainer_queue_length") - \
        _metric(before, "greentrainer_queue_length") == 2
    for name, delta in [("greentrainer_executed_flops", 4e14), ("greentrainer_full_ft_flops", 1e15),
                        ("greentrainer_co2_kg", 0.004), ("greentrainer_energy_kwh", 0.02)]:
        assert _metric(after, name) - _metric(before, name) == pytest.approx(delta)


def test_openapi_docs_are_served(api: Api) -> None:
    assert "swagger" in api.client.get("/docs").text.lower()
    paths = api.client.get("/openapi.json").json()["paths"]
    for path in ["/jobs", "/jobs/{job_id}/cancel", "/jobs/{job_id}/epochs", "/datasets",
                 "/teams", "/readyz", "/jobs/{job_id}/artifacts/{artifact_id}/content"]:
        assert path in paths


def test_an_exhausted_connection_pool_is_503_with_retry_after(api: Api) -> None:
    team = api.new_team()
    settings = api.settings.model_copy(update={"db_pool_size": 1, "db_pool_timeout_seconds": 0.3})
    app = create_app(settings)
    engine = app.state.context.engine
    held = [engine.connect() for _ in range(pool_capacity(1))]  # nothing left
    try:
        with LiveServer(app) as server:
            r = httpx.get(f"{server.base_url}/jobs", headers=team, timeout=10)
    finally:
        for connection in held:
            connection.close()
        engine.dispose()
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.json()["error"]["code"] == "database_unavailable"
