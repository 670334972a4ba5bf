"""What the worker records (epochs, events, artifacts) is what the API serves: per-epoch rows
are never counted twice, artifacts download byte for byte, and the event stream (SSE) follows a
job live until it ends."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from greentrainer_core.config import EpochRecord
from service.job_events import append_event
from service.job_records import EpochMeasurement, record_epoch, register_artifact
from service.jobs import transition
from service.models import Job, JobEpoch
from service.quotas import co2_kg_this_month
from service.states import JobStatus
from tests.service.conftest import Api


def _epoch(index: int, rho: float) -> tuple[EpochRecord, EpochMeasurement]:
    return (EpochRecord(epoch=index, rho=rho,
                        selected=[f"layers.{i}.mlp.down_proj.weight" for i in range(3 + index)],
                        predicted_flops=int(rho * 1e15), executed_flops=int(rho * 0.98e15),
                        full_flops=int(1e15), wall_s=12.5 + index, loss=2.0 - 0.3 * index),
            EpochMeasurement(carbon_intensity_g_per_kwh=180.0 - 10 * index,
                             carbon_intensity_source="uk-carbon-intensity",
                             energy_kwh=0.01 * rho, kg_co2=0.01 * rho * 0.18,
                             energy_is_estimate=False))


def _running_job(api: Api, team: dict[str, str]) -> str:
    job_id = api.job_id(team)
    with api.factory() as session:
        transition(session, session.get_one(Job, job_id), JobStatus.RUNNING)
        session.commit()
    return job_id


def test_epochs_are_served_in_order_and_a_replayed_epoch_is_not_counted_twice(api: Api) -> None:
    team = api.new_team()
    job_id = _running_job(api, team)
    with api.factory() as session:
        job = session.get_one(Job, job_id)
        for index, rho in [(0, 0.4), (1, 0.7)]:
            assert record_epoch(session, job, *_epoch(index, rho))[1]
        session.commit()
    with api.factory() as session:  # the task is re-delivered after a crash and replays epoch 1
        row, created = record_epoch(session, session.get_one(Job, job_id), *_epoch(1, 0.9))
        session.commit()
    assert not created and row.rho == 0.7
    epochs = api.client.get(f"/jobs/{job_id}/epochs", headers=team).json()
    assert [(e["epoch_index"], e["rho"]) for e in epochs] == [(0, 0.4), (1, 0.7)]
    first = epochs[0]
    assert first["selected_tensor_count"] == 3 == len(first["selected_tensor_names"])
    assert first["carbon_intensity_source"] == "uk-carbon-intensity"
    assert first["full_ft_flops"] == 1e15 and first["executed_flops"] == 0.4 * 0.98e15
    assert first["energy_is_estimate"] is False
    assert api.client.get(f"/jobs/{job_id}", headers=team).json()["last_finished_epoch"] == 1


def test_artifacts_are_listed_and_download_byte_for_byte(api: Api, tmp_path: Path) -> None:
    team = api.new_team()
    job_id = _running_job(api, team)
    payload = bytes(range(256)) * 1000
    path = tmp_path / "delta.safetensors"
    path.write_bytes(payload)
    with api.factory() as session:
        register_artifact(session, api.app_store(), session.get_one(Job, job_id), path,
                          kind="delta")
        session.commit()
    listed = api.client.get(f"/jobs/{job_id}/artifacts", headers=team).json()
    assert [(a["filename"], a["kind"], a["size_bytes"]) for a in listed] == \
        [("delta.safetensors", "delta", len(payload))]
    assert listed[0]["sha256"] == hashlib.sha256(payload).hexdigest()
    download = api.client.get(f"/jobs/{job_id}/artifacts/{listed[0]['id']}/content", headers=team)
    assert download.status_code == 200 and download.content == payload
    assert "delta.safetensors" in download.headers["content-disposition"]


def test_stored_events_page_with_after(api: Api) -> None:
    team = api.new_team()
    job_id = api.job_id(team)
    with api.factory() as session:
        for i in range(5):
            append_event(session, job_id, "log", f"step {i}")
        session.commit()
    first = api.client.get(f"/jobs/{job_id}/events", params={"limit": 3}, headers=team).json()
    rest = api.client.get(f"/jobs/{job_id}/events", headers=team,
                          params={"after": first["last_id"]}).json()
    messages = [e["message"] for e in first["data"] + rest["data"]]
    assert first["has_more"] and not rest["has_more"]
    assert messages[2:] == [f"step {i}" for i in range(5)] and len(messages) == 7


def _read_sse(api: Api, url: str, headers: dict[str, str], out: list[dict[str, object]]) -> None:
    with api.client.stream("GET", url, headers={**headers, "Accept": "text/event-stream"}) as r:
        kind = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                out.append({"event": kind, **json.loads(line.removeprefix("data: "))})


def test_the_event_stream_follows_a_job_live_until_it_ends(api: Api) -> None:
    team = api.new_team()
    job_id = api.job_id(team)
    received: list[dict[str, object]] = []
    reader = threading.Thread(target=_read_sse, args=(api, f"/jobs/{job_id}/events", team,
                                                      received))
    reader.start()
    time.sleep(0.3)
    with api.factory() as session:
        job = session.get_one(Job, job_id)
        transition(session, job, JobStatus.RUNNING)
        session.commit()
        record_epoch(session, job, *_epoch(0, 0.5))
        session.commit()
        transition(session, job, JobStatus.SUCCEEDED, result={"rouge1": 0.31})
        session.commit()
    reader.join(timeout=20)
    assert not reader.is_alive(), "the stream did not end after the job finished"
    kinds = [e["event"] for e in received]
    assert kinds == ["created", "status", "status", "epoch", "status", "end"]
    assert received[-2]["data"] == {"from": "running", "to": "succeeded"}


def test_the_stream_resumes_after_last_event_id(api: Api) -> None:
    team = api.new_team()
    job_id = api.job_id(team)
    api.client.post(f"/jobs/{job_id}/cancel", headers=team)
    events = api.client.get(f"/jobs/{job_id}/events", headers=team).json()["data"]
    received: list[dict[str, object]] = []
    _read_sse(api, f"/jobs/{job_id}/events", {**team, "Last-Event-ID": str(events[0]["id"])},
              received)
    assert [e["id"] for e in received[:-1]] == [e["id"] for e in events[1:]]


def test_an_open_event_stream_does_not_hold_a_database_connection(api: Api) -> None:
    team = api.new_team()
    job_id = api.job_id(team)
    received: list[dict[str, object]] = []
    reader = threading.Thread(target=_read_sse, args=(api, f"/jobs/{job_id}/events", team,
                                                      received))
    reader.start()
    context = api.app.state.context
    try:
        deadline = time.monotonic() + 10
        while len(received) < 2 and time.monotonic() < deadline:  # the stream is open
            time.sleep(0.02)
        held, permits_free = [], []
        for _ in range(50):
            held.append(context.engine.pool.checkedout())
            permits_free.append(context.db_permits.available)
            time.sleep(0.01)
    finally:
        api.client.post(f"/jobs/{job_id}/cancel", headers=team)
        reader.join(timeout=20)
    assert len(received) >= 2 and min(held) == 0, held
    # nor a connection permit: streams open for hours would leave other requests none
    assert max(permits_free) == context.db_permits.total, permits_free


def test_the_month_co2_totals_count_each_recorded_epoch_once_in_its_month(api: Api) -> None:
    """The dispatcher's budget check reads running totals (`TeamMonthCo2`), not a sum over the
    month's epochs: they must agree with that sum, a replayed epoch must not add to them, and an
    epoch of another month must count there only."""
    team, other = api.new_team(), api.new_team()
    job_id, other_job = _running_job(api, team), _running_job(api, other)
    last_month = datetime.now(UTC).replace(day=1) - timedelta(days=3)
    with api.factory() as session:
        job = session.get_one(Job, job_id)
        for index, rho in [(0, 0.4), (1, 0.7)]:
            record_epoch(session, job, *_epoch(index, rho))
        record_epoch(session, session.get_one(Job, other_job), *_epoch(0, 1.0))
        session.add(JobEpoch(job_id=job_id, epoch_index=9, rho=1.0, selected_tensor_count=1,
                             selected_tensor_names=[], predicted_flops=1, executed_flops=1,
                             full_ft_flops=1, wall_seconds=1, kg_co2=5.0, created_at=last_month))
        session.commit()
    with api.factory() as session:  # replayed after a crash: not counted again
        record_epoch(session, session.get_one(Job, job_id), *_epoch(1, 0.9))
        session.commit()
    ids = [team["X-Team-Id"], other["X-Team-Id"]]
    with api.factory() as session:
        this_month = co2_kg_this_month(session, ids)
        summed = dict(session.execute(
            select(Job.team_id, func.sum(JobEpoch.kg_co2)).join(JobEpoch, JobEpoch.job_id == Job.id)
            .where(Job.team_id.in_(ids), JobEpoch.created_at >= datetime.now(UTC).replace(
                day=1, hour=0, minute=0, second=0, microsecond=0))
            .group_by(Job.team_id)).all())
        before = co2_kg_this_month(session, ids, now=last_month)
    assert this_month == pytest.approx(summed)
    assert this_month[ids[0]] == pytest.approx(0.01 * (0.4 + 0.7) * 0.18)
    assert this_month[ids[1]] == pytest.approx(0.01 * 0.18)
    assert before == {ids[0]: 5.0, ids[1]: 0.0}
