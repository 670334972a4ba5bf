"""`greentrainer.client.Client` against the running API: typed records, pages, streamed upload
with progress, the event stream, `wait()` and errors mapped from the API's error object."""

from __future__ import annotations

import pytest

from greentrainer.client import (
    AuthenticationError,
    Client,
    ConflictError,
    Dataset,
    Event,
    Job,
    NotFoundError,
    PayloadTooLargeError,
    UnprocessableEntityError,
    WaitTimeout,
)
from greentrainer.client._base import UPLOAD_CHUNK_BYTES
from tests.client.conftest import Team, new_team, play_in_background, write_rows
from tests.service.conftest import UPLOAD_LIMIT_BYTES, Api


def test_upload_streams_the_file_in_chunks_and_reports_progress(client: Client, tmp_path) -> None:
    path = write_rows(tmp_path / "big.jsonl", 700)  # ~ 40 kB: several chunks, under the limit
    total = path.stat().st_size
    assert UPLOAD_CHUNK_BYTES * 2 < total < UPLOAD_LIMIT_BYTES
    calls: list[tuple[int, int]] = []
    dataset = client.datasets.upload(path, name="big", progress=lambda s, t: calls.append((s, t)))
    assert isinstance(dataset, Dataset)
    assert (dataset.name, dataset.row_count, dataset.size_bytes) == ("big", 700, total)
    sent = [s for s, _ in calls]
    assert sent == sorted(sent) and sent[-1] == total and {t for _, t in calls} == {total}
    assert len(calls) >= total // UPLOAD_CHUNK_BYTES  # read a chunk at a time, never whole
    assert max(b - a for a, b in zip([0, *sent], sent)) <= UPLOAD_CHUNK_BYTES
    assert client.datasets.get(dataset.id) == dataset
    assert client.datasets.upload(path).id == dataset.id  # same bytes: the same data set


def test_pages_and_iterators_walk_every_dataset_and_job_once(client: Client, tmp_path) -> None:
    ids = [client.datasets.upload(write_rows(tmp_path / f"d{i}.jsonl")).id for i in range(5)]
    first = client.datasets.list(limit=2)
    assert len(first) == 2 and first.has_more and first.last_id == first.data[-1].id
    second = client.datasets.list(limit=2, after=first.last_id)
    assert not {d.id for d in first} & {d.id for d in second}
    assert [d.id for d in client.datasets.iter(page_size=2)] == ids[::-1]  # newest first
    jobs = [client.jobs.create(model="smollm2-135m-instruct", training_dataset=d,
                               hyperparameters={"epochs": 2}) for d in ids[:3]]
    assert all(isinstance(j, Job) and j.status == "queued" and j.epochs == 2 for j in jobs)
    assert [j.id for j in client.jobs.iter(page_size=2)] == [j.id for j in jobs[::-1]]
    client.jobs.cancel(jobs[0].id)
    assert [j.id for j in client.jobs.iter(status="cancelled")] == [jobs[0].id]
    assert [j.id for j in client.jobs.list(status="queued", limit=1)] == [jobs[2].id]


def test_events_page_by_page_and_live_until_the_job_ends(api: Api, client: Client,
                                                         tmp_path) -> None:
    dataset = client.datasets.upload(write_rows(tmp_path / "t.jsonl")).id
    job = client.jobs.create(model="smollm2-135m-instruct", training_dataset=dataset,
                             hyperparameters={"epochs": 2}, rho_policy={"type": "fixed", "rho": 0.5})
    worker = play_in_background(api, job.id, [0.5, 0.5])
    live = list(client.jobs.stream_events(job.id))
    worker.join()
    assert all(isinstance(e, Event) for e in live)
    assert [e.id for e in live] == sorted({e.id for e in live})  # in order, none twice
    types = [e.type for e in live]
    assert types[:2] == ["created", "status"] and types.count("epoch") == 2
    assert live[-1].data == {"from": "running", "to": "succeeded"}
    stored = list(client.jobs.iter_events(job.id, page_size=3))
    assert [e.id for e in stored] == [e.id for e in live]
    assert [e.id for e in client.jobs.stream_events(job.id, after=live[-3].id)] == \
        [e.id for e in live[-2:]]
    epochs = client.jobs.checkpoints(job.id)
    assert [(e.epoch_index, e.rho, e.kg_co2) for e in epochs] == [(0, 0.5, 0.002), (1, 0.5, 0.002)]
    final = client.jobs.get(job.id)
    assert final.done and final.status == "succeeded" and final.last_finished_epoch == 1


def test_wait_returns_the_finished_job_or_times_out(api: Api, client: Client, tmp_path) -> None:
    dataset = client.datasets.upload(write_rows(tmp_path / "t.jsonl")).id
    job = client.jobs.create(model="smollm2-135m-instruct", training_dataset=dataset)
    with pytest.raises(WaitTimeout) as timed_out:
        client.jobs.wait(job.id, timeout_s=0.5)
    assert timed_out.value.job.id == job.id and timed_out.value.job.status == "queued"
    worker = play_in_background(api, job.id, [0.6], outcome="failed")
    final = client.jobs.wait(job.id, timeout_s=60)
    worker.join()
    assert final.status == "failed" and final.error is not None
    assert (final.error.code, final.error.message) == ("training_error", "loss is NaN")


def test_errors_are_mapped_from_the_api_error_object(api: Api, client: Client, team: Team,
                                                     tmp_path) -> None:
    with pytest.raises(NotFoundError) as missing:
        client.jobs.get("job_nope")
    assert missing.value.status_code == 404 and missing.value.code == "not_found"
    other = new_team(api)
    with Client(str(api.client.base_url), other.key) as theirs:
        their_job = theirs.jobs.create(model="smollm2-135m-instruct",
                                       training_dataset=theirs.datasets.upload(
                                           write_rows(tmp_path / "o.jsonl")).id)
    with pytest.raises(NotFoundError) as foreign:
        client.jobs.get(their_job.id)
    assert foreign.value.message == missing.value.message.replace("job_nope", their_job.id)
    with pytest.raises(NotFoundError):
        client.jobs.cancel(their_job.id)
    dataset = client.datasets.upload(write_rows(tmp_path / "t.jsonl")).id
    with pytest.raises(UnprocessableEntityError) as invalid:
        client.jobs.create(model="no-such-model", training_dataset=dataset)
    assert invalid.value.code == "unknown_model" and invalid.value.field == "model"
    with pytest.raises(UnprocessableEntityError) as typed:
        client.jobs.create(model="smollm2-135m-instruct", training_dataset=dataset,
                           hyperparameters={"epochs": "many"})
    assert typed.value.field == "hyperparameters.epochs" and typed.value.details
    client.jobs.create(model="smollm2-135m-instruct", training_dataset=dataset,
                       idempotency_key="same")
    with pytest.raises(ConflictError) as reused:
        client.jobs.create(model="smollm2-135m-instruct", training_dataset=dataset,
                           idempotency_key="same", hyperparameters={"epochs": 1})
    assert reused.value.code == "idempotency_key_reused"
    big = tmp_path / "huge.jsonl"
    big.write_bytes(b'{"source": "a", "target": "b"}\n' * (UPLOAD_LIMIT_BYTES // 20))
    with pytest.raises(PayloadTooLargeError):
        client.datasets.upload(big)
    with pytest.raises(FileNotFoundError, match="no such file"):
        client.datasets.upload(tmp_path / "missing.jsonl")
    with Client(str(api.client.base_url), "gt_wrong", max_retries=0) as wrong:
        with pytest.raises(AuthenticationError) as refused:
            wrong.jobs.list()
    assert refused.value.status_code == 401 and "unknown or revoked" in str(refused.value)


def test_a_job_downloads_its_artifacts_to_files(api: Api, client: Client, team: Team,
                                                 tmp_path) -> None:
    from service.job_records import register_artifact
    from service.models import Job as JobRow

    dataset = client.datasets.upload(write_rows(tmp_path / "t.jsonl")).id
    job = client.jobs.create(model="smollm2-135m-instruct", training_dataset=dataset)
    content = bytes(range(256)) * 1000
    (tmp_path / "metrics.json").write_bytes(content)
    with api.factory() as session:  # what the worker's outputs step registers
        register_artifact(session, api.app_store(), session.get_one(JobRow, job.id),
                          tmp_path / "metrics.json", kind="metrics")
        session.commit()
    [artifact] = client.jobs.artifacts(job.id)
    assert (artifact.kind, artifact.size_bytes) == ("metrics", len(content))
    seen: list[int] = []
    (tmp_path / "out").mkdir()
    out = client.jobs.download(job.id, artifact.id, tmp_path / "out",
                               progress=lambda done, total: seen.append(done))
    assert out == tmp_path / "out" / "metrics.json" and out.read_bytes() == content
    assert seen[-1] == len(content) and not list((tmp_path / "out").glob("*.part"))
    with pytest.raises(NotFoundError):
        client.jobs.download(job.id, "art_nope", tmp_path / "x")
