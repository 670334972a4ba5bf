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


def play_job(api: Api, job_id: str, rhos: list[float], *, step_s: float = 0.05,
             outcome: str = "succeeded") -> None:
    """Write what a worker writes while it trains ``job_id`` (service/jobs.py `transition`,
    the runner's epoch_start and progress events, service/job_records.py `record_epoch` with a
    measured CO2), ``step_s`` apart, so that the API's event stream carries a real run's events.
    The training itself is the worker's tests' and the end-to-end tests' business."""
    import time

    from greentrainer_core.config import EpochRecord
    from service.job_events import append_event
    from service.job_records import EpochMeasurement, record_epoch
    from service.jobs import transition
    from service.models import Job
    from service.states import JobStatus

    def write(action: Any) -> None:
        with api.factory() as session:
            action(session, session.get_one(Job, job_id))
            session.commit()
        time.sleep(step_s)

    write(lambda s, job: transition(s, job, JobStatus.RUNNING))
    for epoch, rho in enumerate(rhos):
        write(lambda s, job: append_event(s, job.id, "epoch_start", f"epoch {epoch} started at "
                                          f"rho {rho:.2f}", data={"epoch_index": epoch, "rho": rho}))
        write(lambda s, job: append_event(s, job.id, "progress", f"epoch {epoch} step 1", data={
            "epoch_index": epoch, "step": 1, "loss": 2.0 - epoch / 2}))
        record = EpochRecord(epoch=epoch, rho=rho, selected=["w"], steps=2, loss=2.0 - epoch / 2,
                             executed_flops=int(rho * 1e9), predicted_flops=int(rho * 1e9),
                             full_flops=int(1e9), wall_s=1.0)
        measured = EpochMeasurement(carbon_intensity_g_per_kwh=200.0,
                                    carbon_intensity_source="test", energy_kwh=0.01,
                                    kg_co2=0.002, energy_is_estimate=False)
        write(lambda s, job: record_epoch(s, job, record, measured))
    target = JobStatus(outcome)
    write(lambda s, job: transition(s, job, target, error_code="training_error" if
                                    target is JobStatus.FAILED else None,
                                    error_message="loss is NaN" if target is JobStatus.FAILED
                                    else None))


def play_in_background(api: Api, job_id: str, rhos: list[float], **kwargs: Any) -> Any:
    """`play_job` in a thread; join it when done."""
    import threading

    thread = threading.Thread(target=play_job, args=(api, job_id, rhos), kwargs=kwargs,
                              daemon=True)
    thread.start()
    return thread
