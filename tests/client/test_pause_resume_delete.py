"""Pause, resume and data set deletion through the client and the CLI. The routes
(`POST /jobs/{id}/pause`, `POST /jobs/{id}/resume`, `DELETE /datasets/{id}`) come from the /v1
work of issue 22 on another branch: this file passes once both are merged."""

from __future__ import annotations

import json

import pytest

from greentrainer.client import Client, NotFoundError
from tests.client.conftest import Team, cli, new_team, write_rows
from tests.service.conftest import Api


def _job(client: Client, tmp_path, name: str = "t.jsonl") -> str:
    dataset = client.datasets.upload(write_rows(tmp_path / name)).id
    return client.jobs.create(model="smollm2-135m-instruct", training_dataset=dataset).id


def test_a_queued_job_pauses_at_once_and_resumes_into_the_queue(api: Api, client: Client,
                                                                team: Team, tmp_path) -> None:
    job_id = _job(client, tmp_path)
    assert client.jobs.pause(job_id).status == "paused"
    assert client.jobs.get(job_id).status == "paused"
    url = str(api.client.base_url)
    resumed = cli("jobs", "resume", job_id, "--json", base_url=url, key=team.key)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "queued"
    paused = cli("jobs", "pause", job_id, base_url=url, key=team.key)
    assert paused.returncode == 0 and "status" in paused.stdout and "paused" in paused.stdout
    types = [e.type for e in client.jobs.iter_events(job_id)]
    assert types.count("status") >= 4


def test_a_running_job_is_asked_to_pause_at_its_next_epoch_boundary(api: Api, client: Client,
                                                                    tmp_path) -> None:
    from service.jobs import transition
    from service.models import Job
    from service.states import JobStatus

    job_id = _job(client, tmp_path)
    with api.factory() as session:
        transition(session, session.get_one(Job, job_id), JobStatus.RUNNING)
        session.commit()
    job = client.jobs.pause(job_id)
    assert job.id == job_id and job.status in ("running", "pausing")


@pytest.mark.asyncio
async def test_the_async_client_pauses_and_resumes(api: Api, team: Team, tmp_path) -> None:
    from greentrainer.client import AsyncClient

    async with AsyncClient(str(api.client.base_url), team.key) as gt:
        dataset = await gt.datasets.upload(write_rows(tmp_path / "a.jsonl"))
        job = await gt.jobs.create(model="smollm2-135m-instruct", training_dataset=dataset.id)
        assert (await gt.jobs.pause(job.id)).status == "paused"
        assert (await gt.jobs.resume(job.id)).status == "queued"


def test_pausing_another_teams_job_is_not_found(api: Api, client: Client, team: Team,
                                                tmp_path) -> None:
    their_job = api.job_id(api.new_team())
    with pytest.raises(NotFoundError):
        client.jobs.pause(their_job)
    result = cli("jobs", "resume", their_job, base_url=str(api.client.base_url), key=team.key)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"greentrainer jobs resume: error: no job with id '{their_job}'")


def test_a_dataset_is_deleted_once_and_only_by_its_team(api: Api, client: Client, team: Team,
                                                        tmp_path) -> None:
    dataset = client.datasets.upload(write_rows(tmp_path / "d.jsonl")).id
    assert client.datasets.delete(dataset) is None
    with pytest.raises(NotFoundError):
        client.datasets.get(dataset)
    with pytest.raises(NotFoundError):
        client.datasets.delete(dataset)
    url = str(api.client.base_url)
    second = client.datasets.upload(write_rows(tmp_path / "e.jsonl")).id
    deleted = cli("datasets", "delete", second, "--json", base_url=url, key=team.key)
    assert deleted.returncode == 0, deleted.stderr
    assert json.loads(deleted.stdout) == {"id": second, "object": "dataset", "deleted": True}
    assert second not in [d.id for d in client.datasets.iter()]
    again = cli("datasets", "delete", second, base_url=url, key=team.key)
    assert again.returncode == 1 and len(again.stderr.splitlines()) == 1
    theirs = new_team(api)
    with Client(url, theirs.key) as other:
        their_dataset = other.datasets.upload(write_rows(tmp_path / "o.jsonl")).id
    with pytest.raises(NotFoundError):
        client.datasets.delete(their_dataset)
    with Client(url, theirs.key) as other:
        assert other.datasets.get(their_dataset).id == their_dataset
