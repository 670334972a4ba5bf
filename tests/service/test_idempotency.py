"""Idempotency-Key: retries of the same request give back the same job, recorded and dispatched
once, even when the retries race; reusing a key for a different request is a 409."""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import delete, func, select, update

from service.models import Dataset, Job
from tests.service.conftest import Api


def _jobs_with_key(api: Api, team_id: str, key: str) -> int:
    with api.factory() as session:
        return session.scalar(select(func.count()).select_from(Job).where(
            Job.team_id == team_id, Job.idempotency_key == key)) or 0


def test_retries_with_the_same_key_return_the_first_job(api: Api) -> None:
    team = api.new_team()
    dataset = api.upload(team)
    key = {"Idempotency-Key": secrets.token_hex(8)}
    responses = [api.submit(team, dataset, headers=key, rho_policy={"type": "fixed", "rho": 0.6})
                 for _ in range(3)]
    assert [r.status_code for r in responses] == [201, 200, 200]
    assert len({r.json()["id"] for r in responses}) == 1
    assert responses[1].headers["Idempotent-Replayed"] == "true"
    job_id = responses[0].json()["id"]
    assert api.dispatcher.calls_for(job_id) == ["queued"]
    assert _jobs_with_key(api, team["X-Team-Id"], key["Idempotency-Key"]) == 1


def test_racing_retries_record_one_job(api: Api) -> None:
    team = api.new_team()
    dataset = api.upload(team)
    key = secrets.token_hex(8)
    body = {"model": "smollm2-135m-instruct", "training_dataset": dataset}

    def post(_: int) -> httpx.Response:
        with httpx.Client(base_url=str(api.client.base_url), timeout=30) as client:
            return client.post("/jobs", json=body, headers={**team, "Idempotency-Key": key})

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(post, range(8)))
    assert all(r.status_code in (200, 201) for r in responses), [r.text for r in responses]
    assert sorted(r.status_code for r in responses).count(201) == 1
    assert len({r.json()["id"] for r in responses}) == 1
    assert _jobs_with_key(api, team["X-Team-Id"], key) == 1
    assert api.dispatcher.calls_for(responses[0].json()["id"]) == ["queued"]


def test_reusing_a_key_for_a_different_request_is_409(api: Api) -> None:
    team = api.new_team()
    dataset = api.upload(team)
    key = {"Idempotency-Key": secrets.token_hex(8)}
    first = api.submit(team, dataset, headers=key, rho_policy={"type": "fixed", "rho": 0.6})
    second = api.submit(team, dataset, headers=key, rho_policy={"type": "fixed", "rho": 0.9})
    assert first.status_code == 201
    assert second.status_code == 409
    assert second.json()["error"]["field"] == "Idempotency-Key"
    assert first.json()["id"] in second.json()["error"]["message"]


def test_the_same_key_in_two_teams_makes_two_jobs(api: Api) -> None:
    key = {"Idempotency-Key": "shared-key"}
    a, b = api.new_team(), api.new_team()
    first, second = api.submit(a, headers=key), api.submit(b, headers=key)
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["id"] != second.json()["id"]


def test_requests_without_a_key_make_a_job_each(api: Api) -> None:
    team = api.new_team()
    dataset = api.upload(team)
    assert api.job_id(team, dataset=dataset) != api.job_id(team, dataset=dataset)


def test_a_retry_gets_its_job_back_even_if_the_request_would_now_fail(api: Api) -> None:
    team = api.new_team()
    dataset = api.upload(team)
    key = {"Idempotency-Key": secrets.token_hex(8)}
    first = api.submit(team, dataset, headers=key)
    with api.factory() as session:  # the data set disappears after the job was accepted
        session.execute(update(Job).where(Job.id == first.json()["id"])
                        .values(training_dataset_id=api.upload(team)))
        session.execute(delete(Dataset).where(Dataset.id == dataset))
        session.commit()
    retry = api.submit(team, dataset, headers=key)
    assert retry.status_code == 200 and retry.json()["id"] == first.json()["id"]
