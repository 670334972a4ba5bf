"""One team cannot read, cancel or download another team's job: every route answers 404 with
the same body as for an id that does not exist, so ids do not leak."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.job_records import register_artifact
from service.models import Job
from tests.service.conftest import Api

MISSING = "job_000000000000aaaaaaaaaaaaaaaa"


@pytest.fixture
def owned_job(api: Api, tmp_path: Path) -> tuple[dict[str, str], str, str]:
    owner = api.new_team()
    job_id = api.job_id(owner)
    artifact = tmp_path / "adapter.safetensors"
    artifact.write_bytes(b"weights")
    with api.factory() as session:
        row = register_artifact(session, api.app_store(), session.get_one(Job, job_id), artifact,
                                kind="delta")
        session.commit()
    return owner, job_id, row.id


ROUTES = [
    ("GET", "/jobs/{job}"),
    ("POST", "/jobs/{job}/cancel"),
    ("GET", "/jobs/{job}/events"),
    ("GET", "/jobs/{job}/events?stream=true"),
    ("GET", "/jobs/{job}/epochs"),
    ("GET", "/jobs/{job}/artifacts"),
    ("GET", "/jobs/{job}/artifacts/{artifact}/content"),
]


@pytest.mark.parametrize(("method", "route"), ROUTES)
def test_another_teams_job_is_404_like_a_missing_one(api: Api, owned_job: tuple[dict[str, str],
                                                     str, str], method: str, route: str) -> None:
    owner, job_id, artifact_id = owned_job
    intruder = api.new_team()
    theirs = api.client.request(method, route.format(job=job_id, artifact=artifact_id),
                                headers=intruder)
    missing = api.client.request(method, route.format(job=MISSING, artifact=artifact_id),
                                 headers=intruder)
    assert theirs.status_code == 404, theirs.text
    assert theirs.json()["error"]["message"].replace(job_id, MISSING) == \
        missing.json()["error"]["message"]
    assert api.client.get(f"/jobs/{job_id}", headers=owner).json()["status"] == "queued"


def test_the_owner_can_use_every_route(api: Api, owned_job: tuple[dict[str, str], str, str]
                                       ) -> None:
    owner, job_id, artifact_id = owned_job
    # Cancel comes before the live stream in ROUTES: the stream of a finished job ends.
    assert ROUTES.index(("POST", "/jobs/{job}/cancel")) < \
        ROUTES.index(("GET", "/jobs/{job}/events?stream=true"))
    for method, route in ROUTES:
        r = api.client.request(method, route.format(job=job_id, artifact=artifact_id),
                               headers=owner)
        assert r.status_code == 200, (route, r.text)


def test_another_teams_job_is_not_listed(api: Api,
                                         owned_job: tuple[dict[str, str], str, str]) -> None:
    assert api.client.get("/jobs", headers=api.new_team()).json()["data"] == []


def test_a_job_cannot_train_on_another_teams_data_set(api: Api) -> None:
    owner, intruder = api.new_team(), api.new_team()
    dataset = api.upload(owner)
    r = api.submit(intruder, dataset)
    assert r.status_code == 422 and r.json()["error"]["field"] == "training_dataset"


def test_an_artifact_of_another_job_is_404_even_for_its_owner(
        api: Api, owned_job: tuple[dict[str, str], str, str]) -> None:
    owner, _, artifact_id = owned_job
    other_job = api.job_id(owner)
    r = api.client.get(f"/jobs/{other_job}/artifacts/{artifact_id}/content", headers=owner)
    assert r.status_code == 404
