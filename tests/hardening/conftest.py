"""Fixtures for the hardening tests: a live API on loopback (SQLite) built like the service
tests' one, with settings each test file may override (e.g. the failed sign-in limit)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.app import create_app
from service.db import make_engine, make_session_factory, upgrade
from service.dispatch import RecordingDispatcher
from service.settings import Settings
from tests.conftest import require
from tests.hardening.private_services import PrivatePostgres, postgres_available
from tests.service.conftest import ADMIN_KEY, UPLOAD_LIMIT_BYTES, Api, LiveServer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def live_api(root: Path, database_url: str | None = None, **overrides: Any) -> Iterator[Api]:
    """A migrated database (SQLite under ``root`` unless given), the app and a client."""
    url = database_url or f"sqlite:///{root / 'api.sqlite'}"
    upgrade(url)
    (root / "models").mkdir(exist_ok=True)
    values: dict[str, Any] = {
        "database_url": url, "data_dir": root / "data", "admin_key": ADMIN_KEY,
        "max_upload_bytes": UPLOAD_LIMIT_BYTES, "allowed_model_dirs": [root / "models"],
        "hf_cache_dir": root / "hf-cache", "sse_poll_seconds": 0.05,
        "signin_failure_burst": 10_000, **overrides}
    settings = Settings(**values)
    dispatcher = RecordingDispatcher()
    app = create_app(settings, dispatcher=dispatcher)
    engine = make_engine(url)
    try:
        with LiveServer(app) as server, httpx.Client(base_url=server.base_url,
                                                     timeout=30) as client:
            yield Api(client=client, settings=settings, dispatcher=dispatcher,
                      factory=make_session_factory(engine), backend=url.split(":")[0], app=app)
    finally:
        engine.dispose()
        app.state.context.engine.dispose()


@pytest.fixture(scope="module")
def hard_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One live API per test module, with no practical limit on failed sign-ins."""
    with live_api(tmp_path_factory.mktemp("hard-api")) as api:
        yield api


@pytest.fixture
def pg() -> Iterator[PrivatePostgres]:
    """A private Postgres cluster on a free port, for tests that stop and restart it."""
    require(postgres_available(), "Postgres 15 binaries (/usr/lib/postgresql/15/bin)")
    cluster = PrivatePostgres()
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.remove()
