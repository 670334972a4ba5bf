"""The API on an S3 bucket (a real moto server process behind a fault proxy): data sets go to
the bucket, artifacts come back streamed through the API or by a 307 to a presigned URL, and a
store that is down is a 503 naming it, not a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from service.app import create_app
from service.db import upgrade
from service.job_records import register_artifact
from service.models import Dataset, Job, new_id, utcnow
from service.object_store import S3BlobStore
from service.settings import Settings
from tests.s3 import FaultProxy, fault_proxy, moto_server, storage_settings  # noqa: F401 (fixtures)
from tests.service.conftest import ADMIN_KEY, LiveServer


@dataclass
class S3Api:
    client: httpx.Client
    app: object
    proxy: FaultProxy
    team: dict[str, str]

    @property
    def store(self) -> S3BlobStore:
        store: S3BlobStore = self.app.state.context.store  # type: ignore[attr-defined]
        return store


def _api(root: Path, proxy: FaultProxy, download: str) -> Iterator[S3Api]:
    url = f"sqlite:///{root / 'api.sqlite'}"
    upgrade(url)
    settings = Settings(database_url=url, data_dir=root / "data", admin_key=ADMIN_KEY,
                        storage=storage_settings(proxy.url, artifact_download=download,
                                                 max_attempts=2))
    app = create_app(settings)
    with LiveServer(app) as server, httpx.Client(base_url=server.base_url, timeout=30) as client:
        r = client.post("/teams", json={"name": "s3"},
                        headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        assert r.status_code == 201, r.text
        yield S3Api(client, app, proxy,
                    {"Authorization": f"Bearer {r.json()['api_key']['key']}"})
    app.state.context.engine.dispose()


@pytest.fixture(params=["proxy", "redirect"])
def s3_api(request: pytest.FixtureRequest, tmp_path: Path,
           fault_proxy: FaultProxy) -> Iterator[S3Api]:
    yield from _api(tmp_path, fault_proxy, request.param)


def _job_with_artifact(api: S3Api, dataset_id: str, payload: bytes, tmp_path: Path) -> tuple[str, str]:
    context = api.app.state.context  # type: ignore[attr-defined]
    with context.factory.begin() as session:
        dataset = session.get(Dataset, dataset_id)
        job = Job(id=new_id("job"), team_id=dataset.team_id, model="m", model_source="alias",
                  method="greentrainer", hyperparameters={}, rho_policy={}, status="succeeded",
                  training_dataset_id=dataset_id, created_at=utcnow(), updated_at=utcnow())
        session.add(job)
        session.flush()
        source = tmp_path / "metrics.json"
        source.write_bytes(payload)
        artifact = register_artifact(session, context.store, job, source, kind="metrics")
        return job.id, artifact.id


def test_datasets_and_artifacts_live_in_the_bucket(s3_api: S3Api, tmp_path: Path) -> None:
    rows = "\n".join(json.dumps({"source": f"s{i}", "target": f"t{i}"}) for i in range(3))
    r = s3_api.client.post("/datasets", files={"file": ("d.jsonl", rows.encode())},
                           headers=s3_api.team)
    assert r.status_code == 201, r.text
    dataset_id = r.json()["id"]
    payload = json.dumps({"loss": [1.0, 0.5]}).encode() * 1000
    job_id, artifact_id = _job_with_artifact(s3_api, dataset_id, payload, tmp_path)
    assert not (tmp_path / "data" / "blobs").exists()  # nothing on the API's disk
    path = f"/jobs/{job_id}/artifacts/{artifact_id}/content"
    r = s3_api.client.get(path, headers=s3_api.team)
    if s3_api.app.state.context.settings.storage.artifact_download == "redirect":  # type: ignore[attr-defined]
        assert r.status_code == 307
        location = r.headers["location"]
        assert location.startswith(s3_api.proxy.url) and "X-Amz-Signature" in location
        r = httpx.get(location)
    assert r.status_code == 200 and r.content == payload
    assert any("datasets/" in line for line in s3_api.proxy.seen if line.startswith("PUT"))


def test_a_store_that_is_down_is_a_503_naming_it(s3_api: S3Api, tmp_path: Path) -> None:
    rows = json.dumps({"source": "s", "target": "t"}).encode()
    r = s3_api.client.post("/datasets", files={"file": ("d.jsonl", rows)}, headers=s3_api.team)
    assert r.status_code == 201, r.text
    job_id, artifact_id = _job_with_artifact(s3_api, r.json()["id"], b"{}", tmp_path)
    s3_api.proxy.down = True
    r = s3_api.client.post("/datasets", files={"file": ("e.jsonl", rows + b"\n" + rows)},
                           headers=s3_api.team)
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "storage_unavailable"
    assert s3_api.proxy.url.removeprefix("http://") in r.json()["error"]["message"]
    assert r.headers["retry-after"] == "5"
    if s3_api.store.settings.artifact_download == "proxy":
        r = s3_api.client.get(f"/jobs/{job_id}/artifacts/{artifact_id}/content",
                              headers=s3_api.team)
        assert r.status_code == 503 and r.json()["error"]["code"] == "storage_unavailable"
