"""DELETE /datasets/{id}: 204 and gone (not read, listed, nor usable by a new job), its bytes
removed unless another data set holds the same; 409 naming the job while an unfinished job
uses it; 404 for another team's; finished jobs keep naming it; the same upload brings it back."""

from __future__ import annotations

import pytest

from service.models import Dataset
from service.states import JobStatus
from tests.service.conftest import Api
from tests.service.test_cancel import _job_in

ROWS = [{"source": "a question", "target": "an answer"}, {"source": "b", "target": "c"}]


def _blob(api: Api, dataset_id: str) -> str:
    with api.factory() as session:
        return str(session.get_one(Dataset, dataset_id).storage_key)


def test_a_deleted_data_set_is_gone_with_its_bytes(api: Api) -> None:
    team = api.new_team()
    dataset_id = api.upload(team)
    path = api.app_store().local_path(_blob(api, dataset_id))
    assert path.is_file()
    r = api.client.delete(f"/datasets/{dataset_id}", headers=team)
    assert r.status_code == 204 and r.content == b""
    assert not path.exists()
    assert api.client.get(f"/datasets/{dataset_id}", headers=team).status_code == 404
    listed = api.client.get("/datasets", params={"limit": 100}, headers=team).json()["data"]
    assert dataset_id not in [d["id"] for d in listed]
    r = api.submit(team, dataset=dataset_id)
    assert r.status_code == 422 and r.json()["error"]["field"] == "training_dataset"
    again = api.client.delete(f"/datasets/{dataset_id}", headers=team)
    assert again.status_code == 404


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.PAUSED])
def test_a_data_set_an_unfinished_job_uses_is_409_naming_the_job(api: Api,
                                                                  status: JobStatus) -> None:
    team = api.new_team()
    job_id = _job_in(api, team, JobStatus.QUEUED)
    if status is JobStatus.RUNNING:
        job_id = _job_in(api, team, JobStatus.RUNNING)
    elif status is JobStatus.PAUSED:
        api.client.post(f"/jobs/{job_id}/pause", headers=team)
    dataset_id = api.client.get(f"/jobs/{job_id}", headers=team).json()["training_dataset"]
    r = api.client.delete(f"/datasets/{dataset_id}", headers=team)
    assert r.status_code == 409, r.text
    assert job_id in r.json()["error"]["message"]
    assert api.client.get(f"/datasets/{dataset_id}", headers=team).status_code == 200


def test_a_finished_jobs_data_set_can_be_deleted_and_the_job_still_names_it(api: Api) -> None:
    team = api.new_team()
    job_id = api.job_id(team)
    dataset_id = api.client.get(f"/jobs/{job_id}", headers=team).json()["training_dataset"]
    api.client.post(f"/jobs/{job_id}/cancel", headers=team)
    assert api.client.delete(f"/datasets/{dataset_id}", headers=team).status_code == 204
    job = api.client.get(f"/jobs/{job_id}", headers=team)
    assert job.status_code == 200 and job.json()["training_dataset"] == dataset_id


def test_another_teams_data_set_is_404_and_stays(api: Api) -> None:
    owner, other = api.new_team(), api.new_team()
    dataset_id = api.upload(owner)
    assert api.client.delete(f"/datasets/{dataset_id}", headers=other).status_code == 404
    assert api.client.get(f"/datasets/{dataset_id}", headers=owner).status_code == 200


def test_bytes_another_team_also_uploaded_are_kept_and_a_reupload_revives_the_data_set(
        api: Api) -> None:
    a, b = api.new_team(), api.new_team()
    first, second = api.upload(a, ROWS), api.upload(b, ROWS)
    path = api.app_store().local_path(_blob(api, first))
    assert api.client.delete(f"/datasets/{first}", headers=a).status_code == 204
    assert path.is_file()  # team b's data set holds the same bytes
    assert api.client.get(f"/datasets/{second}", headers=b).status_code == 200
    assert api.client.delete(f"/datasets/{second}", headers=b).status_code == 204
    assert not path.exists()
    assert api.upload(a, ROWS) == first  # the same upload brings the data set back
    assert path.is_file()
    assert api.client.get(f"/datasets/{first}", headers=a).status_code == 200
