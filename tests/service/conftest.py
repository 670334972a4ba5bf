"""Fixtures for the service tests: a real Postgres database per test session (and SQLite), a
real uvicorn server on loopback, and helpers to make teams, data sets and jobs through HTTP."""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from sqlalchemy.orm import Session, sessionmaker

from service.app import create_app
from service.db import make_engine, make_session_factory, upgrade
from service.dispatch import RecordingDispatcher
from service.settings import Settings
from service.storage import BlobStore
from tests.conftest import require

PG_ADMIN_URLS = ("postgresql://postgres@127.0.0.1:5432/test", "postgresql://root@127.0.0.1:5432/test")
ADMIN_KEY = "gt_admin_" + secrets.token_hex(16)
UPLOAD_LIMIT_BYTES = 64 * 1024


def _pg_admin_url() -> str | None:
    for url in PG_ADMIN_URLS:
        try:
            with psycopg.connect(url, connect_timeout=3):
                return url
        except psycopg.OperationalError:
            continue
    return None


class PostgresDatabases:
    """Creates uniquely named databases (gt_test_<random>) and drops them at the end, so that
    parallel test runs never share one."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.created: list[str] = []

    def create(self) -> str:
        name = f"gt_test_{secrets.token_hex(6)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        base = self.admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        return f"{base}/{name}"

    def drop_all(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for name in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresDatabases]:
    admin_url = _pg_admin_url()
    require(admin_url is not None, "Postgres on 127.0.0.1:5432 (database `test`)")
    assert admin_url is not None
    databases = PostgresDatabases(admin_url)
    yield databases
    databases.drop_all()


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, un-migrated database of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.sqlite'}"
    return request.getfixturevalue("postgres").create()


class LiveServer:
    """uvicorn serving ``app`` on 127.0.0.1 in a background thread."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


@dataclass
class Api:
    """A running API plus helpers that act through HTTP like a client would."""

    client: httpx.Client
    settings: Settings
    dispatcher: RecordingDispatcher
    factory: sessionmaker[Session]
    backend: str
    app: Any
    admin: dict[str, str] = field(default_factory=lambda: {"Authorization": f"Bearer {ADMIN_KEY}"})

    def app_store(self) -> BlobStore:
        """The blob store the running app reads artifacts from (the worker writes to it)."""
        store: BlobStore = self.app.state.context.store
        return store

    def new_team(self, **quotas: Any) -> dict[str, str]:
        """Create a team; returns the headers that authenticate as it (plus its id)."""
        name = f"team-{secrets.token_hex(4)}"
        r = self.client.post("/teams", json={"name": name, **quotas}, headers=self.admin)
        assert r.status_code == 201, r.text
        body = r.json()
        return {"Authorization": f"Bearer {body['api_key']['key']}", "X-Team-Id": body["id"]}

    def upload(self, team: dict[str, str], rows: list[dict[str, Any]] | None = None,
               filename: str = "train.jsonl") -> str:
        rows = rows or [{"source": f"question {i} {secrets.token_hex(4)}", "target": f"answer {i}"}
                        for i in range(5)]
        data = "\n".join(json.dumps(r) for r in rows).encode()
        r = self.client.post("/datasets", files={"file": (filename, data)}, headers=team)
        assert r.status_code in (200, 201), r.text
        return str(r.json()["id"])

    def submit(self, team: dict[str, str], dataset: str | None = None,
               headers: dict[str, str] | None = None, **body: Any) -> httpx.Response:
        payload = {"model": "smollm2-135m-instruct",
                   "training_dataset": dataset or self.upload(team), **body}
        return self.client.post("/jobs", json=payload, headers={**team, **(headers or {})})

    def job_id(self, team: dict[str, str], **body: Any) -> str:
        r = self.submit(team, **body)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The API on a migrated database of each backend, served by uvicorn on loopback."""
    root = tmp_path_factory.mktemp(f"api-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{root / 'api.sqlite'}"
    else:
        url = request.getfixturevalue("postgres").create()
    upgrade(url)
    (root / "models").mkdir()
    settings = Settings(database_url=url, data_dir=root / "data", admin_key=ADMIN_KEY,
                        max_upload_bytes=UPLOAD_LIMIT_BYTES, allowed_model_dirs=[root / "models"],
                        hf_cache_dir=root / "hf-cache", sse_poll_seconds=0.05)
    dispatcher = RecordingDispatcher()
    app = create_app(settings, dispatcher=dispatcher)
    engine = make_engine(url)
    with LiveServer(app) as server, httpx.Client(base_url=server.base_url, timeout=30) as client:
        yield Api(client=client, settings=settings, dispatcher=dispatcher,
                  factory=make_session_factory(engine), backend=request.param, app=app)
    engine.dispose()
    app.state.context.engine.dispose()
