"""Fixtures for the dashboard tests: the API app (with the dashboard) served by uvicorn on
loopback against SQLite and a real Postgres, teams made through the API, the embedded stack of
`greentrainer up` (SQLite, the SQLAlchemy broker transport, a real worker process, the
scheduler loop) for the job lifecycle, and a headless Debian Chromium driven by Playwright
(never a downloaded browser)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from service.app import create_app
from service.db import make_engine, make_session_factory, upgrade
from service.settings import DashboardSettings, Settings
from tests.conftest import require
from tests.e2e.conftest import Stack, _stack
from tests.service.conftest import LiveServer, postgres  # noqa: F401 (fixture)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ADMIN_KEY = "gt_admin_" + secrets.token_hex(16)


@dataclass
class Site:
    base_url: str
    client: httpx.Client
    factory: sessionmaker[Session]
    backend: str
    admin_headers: dict[str, str]

    def new_team(self) -> tuple[str, str]:
        """(team id, API key) of a new team, made through the API."""
        r = self.client.post("/teams", json={"name": f"team-{secrets.token_hex(4)}"},
                             headers=self.admin_headers)
        assert r.status_code == 201, r.text
        return r.json()["id"], r.json()["api_key"]["key"]


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Site]:
    root = tmp_path_factory.mktemp(f"dash-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{root / 'dash.sqlite'}"
    else:
        url = request.getfixturevalue("postgres").create()
    upgrade(url)
    settings = Settings(database_url=url, data_dir=root / "data", admin_key=SecretStr(ADMIN_KEY),
                        hf_cache_dir=root / "hf-cache")
    app = create_app(settings)
    app.state.dashboard_settings = DashboardSettings(poll_seconds=0.3)
    engine = make_engine(url)
    with LiveServer(app) as server, httpx.Client(base_url=server.base_url, timeout=30) as client:
        yield Site(base_url=server.base_url, client=client, factory=make_session_factory(engine),
                   backend=request.param,
                   admin_headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    engine.dispose()
    app.state.context.engine.dispose()


class Embedded(NamedTuple):
    site: Site
    stack: Stack


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embedded]:
    """What `greentrainer up` runs, on a fresh SQLite file: the API with the dashboard, the
    dispatcher loop, and one real `greentrainer worker` process (CPU) on kombu's SQLAlchemy
    transport; jobs name the tiny random-init model saved under an allowed model dir."""
    root = tmp_path_factory.mktemp("dash-embedded")
    for stack in _stack(root, f"sqlite:///{root / 'gt.sqlite'}", None):
        stack.app.state.dashboard_settings = DashboardSettings(poll_seconds=0.3)
        stack.start_worker()
        site = Site(base_url=str(stack.client.base_url).rstrip("/"), client=stack.client,
                    factory=stack.factory, backend="embedded", admin_headers=stack.admin)
        yield Embedded(site, stack)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    require(os.path.exists(CHROMIUM), f"Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=CHROMIUM_FLAGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    yield tab
    context.close()


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot under test-artifacts/ (gitignored) and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
