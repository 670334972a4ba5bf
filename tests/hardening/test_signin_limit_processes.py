"""The failed sign-in limit holds across API processes: two `greentrainer serve` processes on one
database (Postgres, and the SQLite file of `greentrainer up`) draw on one bucket per address, so
together they allow one burst of wrong keys, not one each."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from service.db import upgrade
from tests.hardening.conftest import free_port
from tests.service.conftest import ADMIN_KEY, postgres  # noqa: F401 (fixture)

ROOT = Path(__file__).resolve().parents[2]
BURST = 20
WRONG = {"Authorization": "Bearer gt_wrong_key_000000000000000000000000000000"}


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated database of each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    else:
        url = request.getfixturevalue("postgres").create()
    upgrade(url)
    return url


@contextmanager
def _serving(processes: int, database_url: str, root: Path,
             **extra: str) -> Iterator[list[str]]:
    """``processes`` separate `greentrainer serve` processes on ``database_url``; their base URLs."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("GREENTRAINER_")}
    env |= extra | {
        "PYTHONPATH": str(ROOT),
        "GREENTRAINER_ADMIN_KEY": ADMIN_KEY,
        "GREENTRAINER_SIGNIN_FAILURE_BURST": str(BURST),
        "GREENTRAINER_SIGNIN_FAILURE_REFILL_SECONDS": "3600",  # no refill while the test runs
    }
    with ExitStack() as stack:
        started: list[tuple[subprocess.Popen[bytes], str, Path]] = []
        for index in range(processes):
            port, log = free_port(), root / f"api-{index}.log"
            process = subprocess.Popen(
                [sys.executable, "-m", "greentrainer.cli", "serve", "--port", str(port), "--database-url", database_url],
                cwd=ROOT,
                env={**env, "GREENTRAINER_DATA_DIR": str(root / f"data-{index}")},
                stdout=stack.enter_context(log.open("wb")),
                stderr=subprocess.STDOUT,
            )
            stack.callback(_stop, process)
            started.append((process, f"http://127.0.0.1:{port}", log))
        for process, base_url, log in started:
            assert _healthy(process, base_url), f"API process did not start:\n{log.read_text()[-2000:]}"
        yield [base_url for _, base_url, _ in started]


def _healthy(process: subprocess.Popen[bytes], base_url: str) -> bool:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and process.poll() is None:
        try:
            return httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            time.sleep(0.2)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)


def test_two_api_processes_share_one_burst_of_failed_sign_ins(database_url: str, tmp_path: Path) -> None:
    with _serving(2, database_url, tmp_path) as (first, second), httpx.Client(timeout=30) as client:
        # Alternate the processes: each sees only BURST / 2 wrong keys, fewer than its own burst.
        codes = [client.get(f"{(first, second)[i % 2]}/jobs", headers=WRONG).status_code for i in range(BURST)]
        assert codes == [401] * BURST
        refused = client.get(f"{first}/jobs", headers=WRONG)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "too_many_failed_sign_ins"
        assert int(refused.headers["Retry-After"]) >= 1
        # The other process refuses the address's wrong keys too, until the bucket refills; a
        # valid key (the admin's) is never locked out by its address's failures (issue 24).
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        assert client.get(f"{second}/jobs", headers=WRONG).status_code == 429
        assert client.get(f"{second}/teams", headers=admin).status_code == 200


def test_a_forged_x_forwarded_for_neither_bypasses_nor_aims_the_limit(database_url: str,
                                                                     tmp_path: Path) -> None:
    # uvicorn's own default believes X-Forwarded-For from 127.0.0.1: rotating it gave unlimited
    # guesses, and setting it locked out a chosen address (issue 24).
    with _serving(1, database_url, tmp_path) as (api,), httpx.Client(timeout=30) as client:
        codes = [client.get(f"{api}/jobs", headers={**WRONG, "X-Forwarded-For": f"10.9.0.{n}"})
                 .status_code for n in range(BURST + 3)]
        assert codes == [401] * BURST + [429] * 3
    (tmp_path / "proxied").mkdir()
    with _serving(1, database_url, tmp_path / "proxied",
                  GREENTRAINER_TRUSTED_PROXIES="127.0.0.1") as (api,), \
            httpx.Client(timeout=30) as client:
        # behind a configured proxy, the forwarded client is the one counted
        hits = [client.get(f"{api}/jobs", headers={**WRONG, "X-Forwarded-For": f"10.8.0.{n}"})
                .status_code for n in range(BURST + 3)]
        assert hits == [401] * (BURST + 3)
