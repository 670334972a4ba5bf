"""The scheduler process (`greentrainer scheduler --dispatch`) sends webhook deliveries: a job
finished through the API's database reaches a real loopback receiver, signed, with no other
process involved."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from service.db import make_engine, make_session_factory, upgrade
from service.jobs import transition
from service.models import Dataset, Job, Team, new_id, utcnow
from service.states import JobStatus
from service.webhooks.endpoints import create_endpoint
from service.webhooks.schemas import WebhookCreate
from tests.service.webhook_receiver import Receiver

REPO = Path(__file__).resolve().parents[2]


def test_the_scheduler_process_delivers_a_finished_jobs_webhook(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    factory = make_session_factory(make_engine(url))
    with Receiver() as receiver:
        with factory.begin() as session:
            team = Team(id=new_id("team"), name="t")
            session.add(team)
            session.flush()
            endpoint = create_endpoint(session, team.id, WebhookCreate(url=receiver.url("/h")),
                                       allow_private=True)
            receiver.secrets["/h"] = endpoint.secret
            dataset = Dataset(id=new_id("ds"), team_id=team.id, name="d", format="jsonl",
                              sha256="0" * 64, size_bytes=1, row_count=1, source_field="source",
                              target_field="target", storage_key="k")
            session.add(dataset)
            job = Job(id=new_id("job"), team_id=team.id, model="m", model_source="alias",
                      method="greentrainer", hyperparameters={}, rho_policy={},
                      training_dataset_id=dataset.id, status="running", created_at=utcnow(),
                      updated_at=utcnow())
            session.add(job)
            session.flush()
            transition(session, job, JobStatus.SUCCEEDED)
        env = {**os.environ, "GREENTRAINER_DATABASE_URL": url,
               "GREENTRAINER_DATA_DIR": str(tmp_path), "GREENTRAINER_CARBON_PROVIDERS": "static",
               "GREENTRAINER_WEBHOOKS__ALLOW_PRIVATE_TARGETS": "true",
               "GREENTRAINER_WEBHOOKS__INTERVAL_SECONDS": "0.2"}
        process = subprocess.Popen([sys.executable, "-m", "greentrainer.cli", "scheduler",
                                    "--dispatch"], env=env, cwd=REPO, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while not receiver.at("/h") and time.monotonic() < deadline:
                assert process.poll() is None, process.stdout.read().decode()  # type: ignore[union-attr]
                time.sleep(0.2)
        finally:
            process.send_signal(signal.SIGTERM)
            output = process.communicate(timeout=30)[0].decode()
        assert process.returncode == 0, output
    [got] = receiver.at("/h")
    assert got.error is None and got.verified["type"] == "job.succeeded"
    assert got.verified["data"]["id"] == job.id
