"""Per-epoch checkpoints through the API: listed oldest first with their epoch's metrics,
downloaded byte for byte; another team's job and a missing epoch are 404."""

from __future__ import annotations

import hashlib
from pathlib import Path

from greentrainer_core.config import EpochRecord
from service.job_records import record_epoch, register_artifact
from service.models import Job
from tests.service.conftest import Api
from tests.service.test_records import _running_job


def test_checkpoints_are_listed_with_their_metrics_and_download(api: Api, tmp_path: Path) -> None:
    team = api.new_team()
    job_id = _running_job(api, team)
    contents = {}
    with api.factory.begin() as session:
        job = session.get_one(Job, job_id)
        for index in (1, 0):
            record_epoch(session, job, EpochRecord(
                epoch=index, rho=0.5 + index / 4, selected=[], loss=2.0 - index,
                validation_loss=2.5 - index, predicted_flops=1, executed_flops=10, full_flops=20,
                wall_s=1.0))
            path = tmp_path / f"checkpoint-epoch-{index}.safetensors"
            path.write_bytes(f"tensors of epoch {index}".encode())
            contents[index] = path.read_bytes()
            register_artifact(session, api.app_store(), job, path, kind="checkpoint")
        metrics = tmp_path / "metrics.json"
        metrics.write_text("{}")
        register_artifact(session, api.app_store(), job, metrics, kind="metrics")
    r = api.client.get(f"/jobs/{job_id}/checkpoints", headers=team)
    assert r.status_code == 200, r.text
    listed = r.json()
    assert [c["epoch_index"] for c in listed] == [0, 1]
    assert [c["filename"] for c in listed] == ["checkpoint-epoch-0.safetensors",
                                               "checkpoint-epoch-1.safetensors"]
    assert listed[1]["metrics"] == {"rho": 0.75, "loss": 1.0, "validation_loss": 1.5,
                                    "executed_flops": 10.0, "kg_co2": None}
    assert listed[0]["sha256"] == hashlib.sha256(contents[0]).hexdigest()
    got = api.client.get(f"/jobs/{job_id}/checkpoints/1/content", headers=team)
    assert got.status_code == 200 and got.content == contents[1]
    missing = api.client.get(f"/jobs/{job_id}/checkpoints/7/content", headers=team)
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "epoch_index"
    assert api.client.get(f"/jobs/{job_id}/checkpoints/-1/content",
                          headers=team).status_code == 422
    other = api.new_team()
    assert api.client.get(f"/jobs/{job_id}/checkpoints", headers=other).status_code == 404
    assert api.client.get(f"/jobs/{job_id}/checkpoints/0/content",
                          headers=other).status_code == 404
