"""Retries through a proxy that fails on purpose: a submission whose answer was lost is sent
again with the same Idempotency-Key and makes one job; 503s and dropped connections are retried;
a cut event stream resumes after the last event it delivered; give up after max_retries."""

from __future__ import annotations

import pytest

from greentrainer.client import APIConnectionError, AsyncClient, Client, InternalServerError
from tests.client.conftest import Team, play_job, write_rows
from tests.client.flaky_proxy import FlakyProxy
from tests.service.conftest import Api


@pytest.fixture
def proxy(api: Api):
    with FlakyProxy(str(api.client.base_url)) as running:
        yield running


def test_a_lost_answer_to_a_submission_is_retried_with_the_same_key_and_makes_one_job(
        proxy: FlakyProxy, team: Team, tmp_path) -> None:
    with Client(proxy.url, team.key, backoff_s=0.01) as gt:
        dataset = gt.datasets.upload(write_rows(tmp_path / "t.jsonl")).id
        proxy.fail("POST", "/jobs", "drop_after_forwarding", "503", "drop")
        job = gt.jobs.create(model="smollm2-135m-instruct", training_dataset=dataset)
        posts = [s for s in proxy.seen if (s.method, s.path) == ("POST", "/jobs")]
        assert [s.action for s in posts] == ["drop_after_forwarding", "503", "drop", "forward"]
        keys = {s.headers["Idempotency-Key"] for s in posts}
        assert len(keys) == 1 and keys.pop().startswith("gtc-")
        assert [j.id for j in gt.jobs.iter()] == [job.id]  # the first try's job, and only it


@pytest.mark.asyncio
async def test_the_async_client_retries_the_same_way(proxy: FlakyProxy, team: Team,
                                                     tmp_path) -> None:
    async with AsyncClient(proxy.url, team.key, backoff_s=0.01) as gt:
        proxy.fail("POST", "/datasets", "drop", "503")
        dataset = await gt.datasets.upload(write_rows(tmp_path / "t.jsonl"))
        proxy.fail("POST", "/jobs", "drop_after_forwarding")
        job = await gt.jobs.create(model="smollm2-135m-instruct", training_dataset=dataset.id)
        assert [j.id async for j in gt.jobs.iter()] == [job.id]
        uploads = [s.action for s in proxy.seen if s.path == "/datasets"]
        assert uploads == ["drop", "503", "forward"]  # the file was sent again, whole


def test_retries_end_after_max_retries_with_the_last_error(proxy: FlakyProxy, team: Team) -> None:
    with Client(proxy.url, team.key, max_retries=2, backoff_s=0.01) as gt:
        proxy.fail("GET", "/jobs", "503", "503", "503", "503")
        with pytest.raises(InternalServerError) as overloaded:
            gt.jobs.list()
        assert overloaded.value.status_code == 503 and "upstream overloaded" in str(overloaded.value)
        assert len(proxy.seen) == 3
        proxy.fail("GET", "/jobs", "drop", "drop", "drop")
        with pytest.raises(APIConnectionError, match=f"cannot reach {proxy.url}"):
            gt.jobs.list()


def test_a_cut_event_stream_resumes_after_the_last_event_delivered(api: Api, proxy: FlakyProxy,
                                                                   team: Team, tmp_path) -> None:
    with Client(proxy.url, team.key, backoff_s=0.01) as gt:
        dataset = gt.datasets.upload(write_rows(tmp_path / "t.jsonl")).id
        job = gt.jobs.create(model="smollm2-135m-instruct", training_dataset=dataset)
        play_job(api, job.id, [0.5, 0.7], step_s=0)
        proxy.fail("GET", f"/jobs/{job.id}/events", "cut_stream", "cut_stream")
        events = list(gt.jobs.stream_events(job.id))
        stored = list(gt.jobs.iter_events(job.id))
        assert [e.id for e in events] == [e.id for e in stored]  # no gap, nothing twice
        streams = [s for s in proxy.seen if s.path.startswith(f"/jobs/{job.id}/events?stream")]
        assert [s.action for s in streams] == ["cut_stream", "cut_stream", "forward"]
        assert "Last-Event-ID" not in streams[0].headers
        assert [int(s.headers["Last-Event-ID"]) for s in streams[1:]] == [events[1].id,
                                                                          events[3].id]
