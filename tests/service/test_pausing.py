"""Pause and resume through the API and the domain functions: a waiting job pauses at once, a
running one only records the request (its worker pauses at the epoch boundary), resume re-queues
it; a team's pause wins over the carbon plan's; carbon pauses come back when their restart (or
their deadline) has come; finished jobs and other teams' jobs are refused (409, 404)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from service.jobs import transition
from service.models import Job, WorkerSlot, utcnow
from service.pausing import PauseReason, request_pause, resume, resume_due
from service.states import JobStatus
from tests.service.conftest import Api
from tests.service.test_cancel import _job_in
from worker.pauses import pause_if_asked

S = JobStatus


def _types(api: Api, team: dict[str, str], job_id: str) -> list[str]:
    events = api.client.get(f"/jobs/{job_id}/events", params={"limit": 1000}, headers=team)
    return [e["type"] for e in events.json()["data"]]


@pytest.mark.parametrize("status", [S.QUEUED, S.WAITING_FOR_GREEN])
def test_a_waiting_job_pauses_at_once_and_resume_requeues_it(api: Api, status: JobStatus) -> None:
    team = api.new_team()
    job_id = _job_in(api, team, status)
    r = api.client.post(f"/jobs/{job_id}/pause", headers=team)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "paused"
    assert body["pause"]["reason"] == "user" and body["pause"]["pending"] is False
    assert body["pause"]["resume_at"] is None and body["planned_start_at"] is None
    assert api.client.post(f"/jobs/{job_id}/pause", headers=team).json()["status"] == "paused"
    r = api.client.post(f"/jobs/{job_id}/resume", headers=team)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "queued" and r.json()["pause"] is None
    assert api.dispatcher.calls_for(job_id) == ["queued", "queued"]
    types = _types(api, team, job_id)
    assert types.count("paused") == 1 and types.count("resumed") == 1


def test_a_running_job_records_the_request_and_its_worker_pauses_at_the_boundary(api: Api) -> None:
    team = api.new_team()
    job_id = _job_in(api, team, S.RUNNING)
    with api.factory() as session:
        session.add(WorkerSlot(name=f"w-{job_id}", gpu_class="any", hostname="h", pid=1,
                               heartbeat_at=utcnow(), started_at=utcnow(), job_id=job_id))
        session.get_one(Job, job_id).lease_owner = f"w-{job_id}"
        session.commit()
    r = api.client.post(f"/jobs/{job_id}/pause", headers=team)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "running" and r.json()["pause"]["pending"] is True
    assert "pause_requested" in _types(api, team, job_id)
    # Another worker's boundary check does not pause a job it does not hold.
    assert not pause_if_asked(api.factory, job_id, "someone-else", 0)
    assert pause_if_asked(api.factory, job_id, f"w-{job_id}", 0)
    with api.factory() as session:
        job = session.get_one(Job, job_id)
        assert job.status == "paused" and job.lease_owner is None
        assert session.get_one(WorkerSlot, f"w-{job_id}").job_id is None  # the slot is free
    body = api.client.get(f"/jobs/{job_id}", headers=team).json()
    assert body["pause"] == {**body["pause"], "reason": "user", "pending": False}
    assert api.client.post(f"/jobs/{job_id}/resume", headers=team).json()["status"] == "queued"


def test_resume_before_the_boundary_withdraws_the_pause(api: Api) -> None:
    team = api.new_team()
    job_id = _job_in(api, team, S.RUNNING)
    api.client.post(f"/jobs/{job_id}/pause", headers=team)
    r = api.client.post(f"/jobs/{job_id}/resume", headers=team)
    assert r.status_code == 200 and r.json()["status"] == "running" and r.json()["pause"] is None
    assert not pause_if_asked(api.factory, job_id, "anyone", 0)


@pytest.mark.parametrize("status", [S.SUCCEEDED, S.FAILED, S.VALIDATING])
def test_a_job_that_cannot_pause_gets_409_naming_its_status(api: Api, status: JobStatus) -> None:
    team = api.new_team()
    job_id = _job_in(api, team, status)
    r = api.client.post(f"/jobs/{job_id}/pause", headers=team)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "illegal_transition"
    assert status.value in r.json()["error"]["message"]


@pytest.mark.parametrize("status", [S.QUEUED, S.RUNNING, S.SUCCEEDED])
def test_resuming_a_job_that_is_not_paused_is_409(api: Api, status: JobStatus) -> None:
    team = api.new_team()
    job_id = _job_in(api, team, status)
    r = api.client.post(f"/jobs/{job_id}/resume", headers=team)
    assert r.status_code == 409 and "not paused" in r.json()["error"]["message"]


def test_another_teams_job_is_404_for_pause_and_resume(api: Api) -> None:
    owner, other = api.new_team(), api.new_team()
    job_id = api.job_id(owner)
    for action in ("pause", "resume"):
        r = api.client.post(f"/jobs/{job_id}/{action}", headers=other)
        assert r.status_code == 404, r.text
    assert api.client.get(f"/jobs/{job_id}", headers=owner).json()["status"] == "queued"


def test_a_paused_job_can_be_cancelled(api: Api) -> None:
    team = api.new_team()
    job_id = api.job_id(team)
    api.client.post(f"/jobs/{job_id}/pause", headers=team)
    r = api.client.post(f"/jobs/{job_id}/cancel", headers=team)
    assert r.json()["status"] == "cancelled" and r.json()["pause"] is None


def test_carbon_pauses_resume_when_due_and_a_team_pause_waits(api: Api) -> None:
    team = api.new_team()
    now = utcnow()
    soon, later, user = (api.job_id(team) for _ in range(3))
    with api.factory() as session:
        for job_id, at in ((soon, now + timedelta(minutes=5)), (later, now + timedelta(hours=5))):
            request_pause(session, session.get_one(Job, job_id), reason=PauseReason.CARBON,
                          resume_at=at, note="cleaner at night")
        request_pause(session, session.get_one(Job, user), reason=PauseReason.USER)
        session.commit()
    paused = api.client.get(f"/jobs/{soon}", headers=team).json()
    assert paused["status"] == "paused" and paused["pause"]["reason"] == "carbon"
    assert paused["pause"]["note"] == "cleaner at night" and paused["pause"]["resume_at"]
    with api.factory() as session:
        assert resume_due(session, now) == []
        assert resume_due(session, now + timedelta(minutes=6)) == [soon]
        session.commit()
    assert api.client.get(f"/jobs/{soon}", headers=team).json()["status"] == "queued"
    with api.factory() as session:  # the team's pause is never resumed by the schedule
        assert resume_due(session, now + timedelta(days=30)) == [later]
        assert session.get_one(Job, user).status == "paused"
        session.commit()


def test_a_carbon_pause_past_its_deadline_is_resumed_at_once(api: Api) -> None:
    team = api.new_team()
    job_id = api.job_id(team)
    now = utcnow()
    with api.factory() as session:
        job = session.get_one(Job, job_id)
        job.deadline = now + timedelta(minutes=1)
        request_pause(session, job, reason=PauseReason.CARBON, resume_at=now + timedelta(hours=2))
        session.commit()
    with api.factory() as session:
        assert resume_due(session, now + timedelta(minutes=2)) == [job_id]
        session.commit()
    messages = [e["message"] for e in api.client.get(
        f"/jobs/{job_id}/events", headers=team).json()["data"]]
    assert any("deadline" in m for m in messages)


def test_a_team_pause_replaces_the_carbon_plans_and_is_not_downgraded(api: Api) -> None:
    team = api.new_team()
    job_id = _job_in(api, team, S.RUNNING)
    with api.factory() as session:
        job = session.get_one(Job, job_id)
        request_pause(session, job, reason=PauseReason.CARBON, resume_at=utcnow())
        request_pause(session, job, reason=PauseReason.USER)
        request_pause(session, job, reason=PauseReason.CARBON, resume_at=utcnow())
        assert job.pause_reason == "user" and job.resume_at is None
        transition(session, job, S.PAUSED)
        session.commit()
    with api.factory() as session:
        assert resume_due(session, utcnow() + timedelta(days=1)) == []
        job = session.get_one(Job, job_id)
        resume(session, job)  # the team resumes it
        assert job.status == "queued" and job.pause_reason is None
        session.commit()
