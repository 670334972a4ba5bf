"""Cancel works from every non-terminal status, is idempotent, refuses finished jobs, and a
worker can never overwrite a cancellation (status changes are compare-and-set)."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from service.errors import IllegalTransition
from service.jobs import transition
from service.models import Job
from service.states import JobStatus
from tests.service.conftest import Api

S = JobStatus
# How the scheduler / worker bring a queued job into each status.
PATHS = {
    S.QUEUED: [],
    S.WAITING_FOR_GREEN: [S.WAITING_FOR_GREEN],
    S.RUNNING: [S.WAITING_FOR_GREEN, S.RUNNING],
    S.SUCCEEDED: [S.RUNNING, S.SUCCEEDED],
    S.FAILED: [S.RUNNING, S.FAILED],
}


def _job_in(api: Api, team: dict[str, str], status: JobStatus) -> str:
    job_id = api.job_id(team)
    with api.factory() as session:
        if status is S.VALIDATING:
            # A job still being validated: only submission itself creates this status.
            session.execute(update(Job).where(Job.id == job_id).values(status=S.VALIDATING.value))
        for step in PATHS.get(status, []):
            transition(session, session.get_one(Job, job_id), step)
        session.commit()
    return job_id


@pytest.mark.parametrize("status", [S.VALIDATING, S.QUEUED, S.WAITING_FOR_GREEN, S.RUNNING])
def test_cancel_from_each_non_terminal_status(api: Api, status: JobStatus) -> None:
    team = api.new_team()
    job_id = _job_in(api, team, status)
    assert api.client.get(f"/jobs/{job_id}", headers=team).json()["status"] == status.value
    r = api.client.post(f"/jobs/{job_id}/cancel", headers=team)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled" and r.json()["finished_at"] is not None
    assert api.dispatcher.calls_for(job_id) == ["queued", "cancelled"]
    last = api.client.get(f"/jobs/{job_id}/events", headers=team).json()["data"][-1]
    assert last["data"] == {"from": status.value, "to": "cancelled"}


def test_cancelling_twice_changes_nothing_the_second_time(api: Api) -> None:
    team = api.new_team()
    job_id = api.job_id(team)
    first = api.client.post(f"/jobs/{job_id}/cancel", headers=team).json()
    second = api.client.post(f"/jobs/{job_id}/cancel", headers=team)
    assert second.status_code == 200 and second.json()["finished_at"] == first["finished_at"]
    assert api.dispatcher.calls_for(job_id) == ["queued", "cancelled"]


@pytest.mark.parametrize("status", [S.SUCCEEDED, S.FAILED])
def test_a_finished_job_cannot_be_cancelled(api: Api, status: JobStatus) -> None:
    team = api.new_team()
    job_id = _job_in(api, team, status)
    r = api.client.post(f"/jobs/{job_id}/cancel", headers=team)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "illegal_transition"
    assert status.value in r.json()["error"]["message"]
    assert api.client.get(f"/jobs/{job_id}", headers=team).json()["status"] == status.value


def test_a_worker_holding_a_stale_row_cannot_overwrite_a_cancel(api: Api) -> None:
    team = api.new_team()
    job_id = _job_in(api, team, S.RUNNING)
    with api.factory() as worker_session:
        stale = worker_session.get_one(Job, job_id)  # the worker read "running"
        assert api.client.post(f"/jobs/{job_id}/cancel", headers=team).status_code == 200
        with pytest.raises(IllegalTransition, match="concurrently"):
            transition(worker_session, stale, S.SUCCEEDED)
        worker_session.rollback()
    assert api.client.get(f"/jobs/{job_id}", headers=team).json()["status"] == "cancelled"


def test_running_sets_started_at_and_failure_records_the_error(api: Api) -> None:
    team = api.new_team()
    job_id = _job_in(api, team, S.RUNNING)
    with api.factory() as session:
        transition(session, session.get_one(Job, job_id), S.FAILED, error_code="oom",
                   error_message="CUDA out of memory at epoch 2")
        session.commit()
    job = api.client.get(f"/jobs/{job_id}", headers=team).json()
    assert job["started_at"] is not None and job["finished_at"] is not None
    assert job["error"] == {"code": "oom", "message": "CUDA out of memory at epoch 2"}
