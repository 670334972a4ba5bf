"""The client and the CLI against the real API (uvicorn on loopback, SQLite and Postgres: the
service tests' `api` fixture), as a user's program or shell would use them."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from greentrainer.client import Client
from tests.service.conftest import Api, api, postgres  # noqa: F401

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Team:
    id: str
    key: str


def new_team(api: Api) -> Team:
    headers = api.new_team()
    return Team(id=headers["X-Team-Id"], key=headers["Authorization"].removeprefix("Bearer "))


@pytest.fixture
def team(api: Api) -> Team:
    return new_team(api)


@pytest.fixture
def client(api: Api, team: Team) -> Iterator[Client]:
    with Client(str(api.client.base_url), team.key, backoff_s=0.01) as gt:
        yield gt


def write_rows(path: Path, n: int = 5) -> Path:
    """A JSONL training file of ``n`` distinct rows (distinct per call: uploads dedupe by bytes)."""
    salt = secrets.token_hex(4)
    path.write_text("\n".join(json.dumps({"source": f"question {i} {salt}", "target": f"answer {i}"})
                              for i in range(n)) + "\n")
    return path


def cli(*args: str, base_url: str | None, key: str | None, tty: bool = False,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`python -m greentrainer <args>` in a subprocess, configured by the environment only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENTRAINER_")}
    env["PYTHONPATH"] = str(REPO)
    if base_url is not None:
        env["GREENTRAINER_BASE_URL"] = base_url
    if key is not None:
        env["GREENTRAINER_API_KEY"] = key
    return subprocess.run([sys.executable, "-m", "greentrainer", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def submit_body(dataset: str, **extra: Any) -> dict[str, Any]:
    return {"model": "smollm2-135m-instruct", "training_dataset": dataset, **extra}
