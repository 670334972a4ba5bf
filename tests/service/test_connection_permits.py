"""More concurrent requests than request threads and pooled connections: all are answered.

The API used to stall under bursts: a request that held its pooled connection (authentication
done) waited for a request thread to run its endpoint, while newer requests held every thread
and waited in the pool for a connection; each then waited the pool timeout and got 503. With a
pool of 2 connections, 4 request threads and 16 requests at once, the old code answered 503s
here; `ConnectionPermits` must answer every request 200.
"""

from __future__ import annotations

import asyncio
import re
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import pytest
from sqlalchemy import event

from service.app import create_app
from service.db import ConnectionPermits, pool_capacity, upgrade
from service.dispatch import RecordingDispatcher
from service.settings import Settings
from tests.service.conftest import ADMIN_KEY, Api, LiveServer, PostgresDatabases

THREADS = 4
REQUESTS = 16
POOL = 2  # database connections


class FewThreads:
    """Runs the app with a request thread pool of ``tokens`` threads (the default is 40)."""

    def __init__(self, app: Any, tokens: int) -> None:
        self.app, self.tokens = app, tokens

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        anyio.to_thread.current_default_thread_limiter().total_tokens = self.tokens
        await self.app(scope, receive, send)


async def _burst(base_url: str, headers: dict[str, str],
                 dashboard: httpx.Cookies | None = None) -> list[int]:
    """REQUESTS requests at once: GET /jobs, or with a signed-in ``dashboard`` session, every
    other one a dashboard page (the jobs page: the team's name, jobs and data sets)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60,
                                 limits=httpx.Limits(max_connections=REQUESTS)) as client:
        responses = await asyncio.gather(*(
            client.get("/dashboard/jobs", cookies=dashboard) if dashboard and i % 2
            else client.get("/jobs", headers=headers) for i in range(REQUESTS)))
    return [r.status_code for r in responses]


def _dashboard_session(base_url: str, key: str) -> httpx.Cookies:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        token = re.search(r'name="csrf_token" value="([^"]+)"',
                          client.get("/dashboard/login").text)
        assert token is not None
        r = client.post("/dashboard/login", data={"api_key": key, "csrf_token": token.group(1)})
        assert r.status_code == 303, r.text
        return client.cookies


def _serve_burst(tmp_path: Path, url: str, rounds: int = 1,
                 with_dashboard: bool = False) -> tuple[list[int], int]:
    """The status codes of ``rounds`` bursts, and how many DB connections the app opened."""
    upgrade(url)
    settings = Settings(database_url=url, data_dir=tmp_path / "data", admin_key=ADMIN_KEY,
                        db_pool_size=POOL, db_pool_timeout_seconds=3)
    app = create_app(settings, dispatcher=RecordingDispatcher())
    opened = []
    event.listen(app.state.context.engine, "connect", lambda *_: opened.append(1))
    try:
        with LiveServer(FewThreads(app, THREADS)) as server:
            admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
            team = httpx.post(f"{server.base_url}/teams", json={"name": "burst"}, headers=admin)
            assert team.status_code == 201, team.text
            key = team.json()["api_key"]["key"]
            headers = {"Authorization": f"Bearer {key}"}
            cookies = _dashboard_session(server.base_url, key) if with_dashboard else None
            # In a thread of its own: another test of the session may leave an event loop
            # running in this one (asyncio.run refuses to nest).
            with ThreadPoolExecutor(1) as pool:
                codes = [code for _ in range(rounds)
                         for code in pool.submit(asyncio.run,
                                                 _burst(server.base_url, headers, cookies)
                                                 ).result()]
        return codes, len(opened)
    finally:
        app.state.context.engine.dispose()


@pytest.fixture
def database_url(postgres: PostgresDatabases) -> str:
    return postgres.create()


def test_a_burst_larger_than_threads_and_connections_is_served(tmp_path: Path,
                                                               database_url: str) -> None:
    assert _serve_burst(tmp_path, database_url)[0] == [200] * REQUESTS


def test_dashboard_pages_in_the_burst_wait_for_permits_too(tmp_path: Path,
                                                          database_url: str) -> None:
    """Dashboard pages read the database in the same thread pool and the same connection pool.
    Taking connections without a permit (and two at once, for the team's name) they could hold
    every thread waiting for the pool while the API requests that held the connections waited
    for a thread: the stall of the module docstring, through the dashboard."""
    codes, opened = _serve_burst(tmp_path, database_url, rounds=2, with_dashboard=True)
    assert codes == [200] * REQUESTS * 2
    assert opened <= POOL


def test_bursts_reuse_the_pooled_connections(tmp_path: Path, database_url: str) -> None:
    """Connections are opened once and kept, however often bursts come. (With overflow
    connections the pool closed each one it got back while its kept places were full, so a
    burst opened and closed connections all the time: a process start in Postgres each.)"""
    codes, opened = _serve_burst(tmp_path, database_url, rounds=5)
    assert codes == [200] * REQUESTS * 5
    assert opened <= pool_capacity(POOL) == POOL


def test_without_the_permits_the_same_burst_stalls(tmp_path: Path, database_url: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The control: the burst above does reproduce the stall when the permits are bypassed,
    so the test above is not passing by luck of timing."""

    class NoPermits(ConnectionPermits):
        def __init__(self, total: int, timeout_s: float) -> None:
            super().__init__(total=10_000, timeout_s=timeout_s)

    monkeypatch.setattr("service.deps.ConnectionPermits", NoPermits)
    assert 503 in _serve_burst(tmp_path, database_url)[0]


def test_every_connection_an_api_process_takes_is_under_a_permit(api: Api) -> None:
    """The permits prevent the stall only if nothing in the API process takes a pooled
    connection without one. Every route of the API and the dashboard is called (an event
    stream included) while a checkout listener notes whether the code checking out holds one:
    the dashboard pages, the stream's polls, /readyz and /metrics did not."""
    engine = api.app.state.context.engine
    unpermitted: list[str] = []

    def on_checkout(*_: object) -> None:
        if not ConnectionPermits.held_here():
            unpermitted.append("".join(traceback.format_stack(limit=12)))

    team, admin = api.new_team(), api.admin
    team_id = team["X-Team-Id"]
    event.listen(engine, "checkout", on_checkout)
    try:
        dataset = api.upload(team)
        job_id = api.job_id(team, dataset=dataset)
        api_gets = ["/me", f"/teams/{team_id}", "/datasets", f"/datasets/{dataset}",
                    "/jobs", f"/jobs/{job_id}", f"/jobs/{job_id}/events", f"/jobs/{job_id}/epochs",
                    f"/jobs/{job_id}/artifacts", f"/jobs/{job_id}/series", "/stats/overview",
                    "/stats/carbon"]
        for path in api_gets:
            r = api.client.get(path, headers=team)
            assert r.status_code == 200, (path, r.text)
        assert api.client.get("/teams", headers=admin).status_code == 200
        assert api.client.post(f"/jobs/{job_id}/cancel", headers=team).status_code == 200
        stream = api.client.get(f"/jobs/{job_id}/events", params={"stream": "true"}, headers=team)
        assert stream.status_code == 200 and "event: end" in stream.text
        for path in ["/readyz", "/metrics"]:
            assert api.client.get(path).status_code == 200, path
        cookies = _dashboard_session(str(api.client.base_url), team["Authorization"][7:])
        with httpx.Client(base_url=api.client.base_url, cookies=cookies, timeout=30) as browser:
            for path in ["", "/grid", "/jobs", "/api/jobs", f"/api/jobs/{job_id}",
                         f"/jobs/{job_id}", f"/jobs/{job_id}/fragment"]:
                r = browser.get(f"/dashboard{path}")
                assert r.status_code == 200, (path, r.text[:300])
    finally:
        event.remove(engine, "checkout", on_checkout)
    assert not unpermitted, unpermitted[0]
