"""The OpenAI-compatible /v1 routes, driven by the real `openai` Python SDK against the API on
loopback (SQLite and Postgres): files and fine-tuning jobs, pagination, "auto" hyperparameters
resolved and recorded, GreenTrainer's options through ``extra_body``, and errors raised as the
SDK's own exception classes, in OpenAI's error shape."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from service.states import JobStatus
from tests.service.conftest import Api

TRAIN = [{"prompt": f"question {i}?", "completion": f" answer {i}"} for i in range(40)]


def _jsonl(rows: list[dict[str, str]]) -> bytes:
    return "\n".join(json.dumps(row) for row in rows).encode()


@pytest.fixture
def team(api: Api) -> dict[str, str]:
    return api.new_team()


@pytest.fixture
def client(api: Api, team: dict[str, str]) -> Iterator[openai.OpenAI]:
    key = team["Authorization"].removeprefix("Bearer ")
    with openai.OpenAI(api_key=key, base_url=f"{api.client.base_url}/v1", max_retries=0) as sdk:
        yield sdk


def _upload(client: openai.OpenAI, rows: list[dict[str, str]] = TRAIN,
            name: str = "train.jsonl") -> str:
    return client.files.create(file=(name, _jsonl(rows)), purpose="fine-tune").id


def test_files_upload_list_retrieve_content_delete(api: Api, client: openai.OpenAI,
                                                   team: dict[str, str]) -> None:
    uploaded = client.files.create(file=("train.jsonl", _jsonl(TRAIN)), purpose="fine-tune")
    assert uploaded.object == "file" and uploaded.purpose == "fine-tune"
    assert uploaded.bytes == len(_jsonl(TRAIN)) and uploaded.filename == "train.jsonl"
    assert uploaded.status == "processed"
    # The same object as the native data set, with OpenAI's field names kept.
    native = api.client.get(f"/datasets/{uploaded.id}", headers=team).json()
    assert (native["row_count"], native["source_field"], native["target_field"]) == \
        (40, "prompt", "completion")
    others = [_upload(client, TRAIN[i:i + 2], f"part{i}.jsonl") for i in range(0, 8, 2)]
    assert client.files.retrieve(uploaded.id).id == uploaded.id
    assert client.files.content(uploaded.id).read() == _jsonl(TRAIN)
    # Pagination: the SDK follows `after` through pages of 2, newest first.
    seen = [f.id for f in client.files.list(limit=2)]
    assert seen == [*reversed(others), uploaded.id]
    first = client.files.list(limit=2)
    assert first.has_more is True and len(first.data) == 2
    deleted = client.files.delete(others[0])
    assert deleted.deleted is True and deleted.id == others[0]
    with pytest.raises(openai.NotFoundError) as info:
        client.files.retrieve(others[0])
    assert info.value.status_code == 404 and info.value.body["param"] == "file_id"  # type: ignore[index]


def test_bad_files_are_bad_requests_naming_the_problem(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.files.create(file=("a.jsonl", b'{"prompt": "x"}\nnot json'), purpose="fine-tune")
    assert "line 1" in info.value.message or "line 2" in info.value.message
    with pytest.raises(openai.BadRequestError) as info:
        client.files.create(file=("a.jsonl", _jsonl(TRAIN)), purpose="batch")
    assert info.value.body["param"] == "purpose"  # type: ignore[index]


def test_a_job_through_the_sdk_with_auto_hyperparameters_recorded(
        api: Api, client: openai.OpenAI, team: dict[str, str]) -> None:
    training = _upload(client)
    job = client.fine_tuning.jobs.create(
        model="smollm2-135m-instruct", training_file=training, suffix="support-bot",
        metadata={"project": "faq", "owner": "ml"},
        method={"type": "supervised", "supervised": {"hyperparameters": {
            "n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": 0.5}}},
        extra_body={"greentrainer": {"method": "greentrainer",
                                     "rho_policy": {"type": "fixed", "rho": 0.5}}})
    assert job.object == "fine_tuning.job" and job.status == "queued"
    assert job.training_file == training and job.organization_id == team["X-Team-Id"]
    # 40 examples: n_epochs ceil(3000 / 40) capped at 10, batch round(0.2% of 40) at least 1.
    assert (job.hyperparameters.n_epochs, job.hyperparameters.batch_size) == (10, 1)
    assert job.hyperparameters.learning_rate_multiplier == pytest.approx(0.5)
    assert job.metadata == {"project": "faq", "owner": "ml"}
    assert job.fine_tuned_model is None and job.result_files == [] and job.seed >= 0
    native = api.client.get(f"/jobs/{job.id}", headers=team).json()
    assert native["hyperparameters"]["epochs"] == 10
    assert native["hyperparameters"]["learning_rate"] == pytest.approx(5e-5)
    assert native["rho_policy"]["rho"] == 0.5 and native["suffix"] == "support-bot"
    events = client.fine_tuning.jobs.list_events(job.id, limit=50).data
    resolved = [e for e in events if e.message.startswith("[hyperparameters]")]
    assert len(resolved) == 1 and resolved[0].data["auto"] == ["n_epochs", "batch_size"]  # type: ignore[index]
    assert {e.level for e in events} <= {"info", "warn", "error"}

    assert client.fine_tuning.jobs.retrieve(job.id).id == job.id
    paused = client.fine_tuning.jobs.pause(job.id)
    assert paused.status == "paused"
    resumed = client.fine_tuning.jobs.resume(job.id)
    assert resumed.status == "queued"
    cancelled = client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    with pytest.raises(openai.ConflictError) as info:
        client.fine_tuning.jobs.pause(job.id)
    assert "cancelled" in info.value.message
    assert client.fine_tuning.jobs.checkpoints.list(job.id).data == []


def test_jobs_and_events_paginate_newest_first(client: openai.OpenAI) -> None:
    training = _upload(client)
    ids = [client.fine_tuning.jobs.create(model="smollm2-135m-instruct", training_file=training,
                                          hyperparameters={"n_epochs": 1}, seed=7).id
           for _ in range(3)]
    page = client.fine_tuning.jobs.list(limit=2)
    assert [j.id for j in page.data] == ids[::-1][:2] and page.has_more
    assert [j.id for j in client.fine_tuning.jobs.list(limit=2)] == ids[::-1]
    assert all(j.seed == 7 for j in client.fine_tuning.jobs.list())
    client.fine_tuning.jobs.pause(ids[0])
    client.fine_tuning.jobs.resume(ids[0])
    events = list(client.fine_tuning.jobs.list_events(ids[0], limit=2))
    assert len(events) >= 6
    numbers = [int(e.id.removeprefix("ftevent-")) for e in events]
    assert numbers == sorted(numbers, reverse=True) and len(set(numbers)) == len(numbers)


def test_greentrainer_options_ride_in_extra_body(api: Api, client: openai.OpenAI,
                                                 team: dict[str, str]) -> None:
    training = _upload(client)
    job = client.fine_tuning.jobs.create(
        model="smollm2-135m-instruct", training_file=training, hyperparameters={"n_epochs": 2},
        extra_body={"greentrainer": {"rho_policy": {"type": "carbon-aware", "rho_min": 0.5,
                                                    "rho_max": 1.0, "region": "FR"},
                                     "region": "GB", "method": "lora"}})
    native = api.client.get(f"/jobs/{job.id}", headers=team).json()
    assert native["rho_policy"]["region"] == "GB" and native["method"] == "lora"
    assert job.model_extra is not None and job.model_extra["greentrainer"]["method"] == "lora"
    fixed = client.fine_tuning.jobs.create(  # a region alone goes on the default fixed rho
        model="smollm2-135m-instruct", training_file=training,
        extra_body={"greentrainer": {"region": "FR"}})
    native = api.client.get(f"/jobs/{fixed.id}", headers=team).json()
    assert (native["rho_policy"]["type"], native["rho_policy"]["region"]) == ("fixed", "FR")
    with pytest.raises(openai.BadRequestError) as info:
        client.fine_tuning.jobs.create(model="smollm2-135m-instruct", training_file=training,
                                       extra_body={"greentrainer": {"co2_budget_kg": 1.0}})
    assert info.value.body["param"] == "greentrainer.rho_policy"  # type: ignore[index]


@pytest.mark.parametrize(("body", "param"), [
    ({"hyperparameters": {"n_epochs": 0}}, "hyperparameters.n_epochs"),
    ({"hyperparameters": {"n_epochs": "many"}}, "hyperparameters.n_epochs"),
    ({"hyperparameters": {"epochs": 2}}, "hyperparameters.epochs"),
    ({"method": {"type": "dpo"}}, "method.type"),
    ({"suffix": "x" * 65}, "suffix"),
    ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
    ({"metadata": {"k": "v" * 513}}, "metadata"),
    ({"validation_file": "ds_missing"}, "validation_file"),
    ({"model": "no-such-model"}, "model"),
    ({"integrations": [{"type": "wandb", "wandb": {"project": "p"}}]}, "integrations"),
    ({"surprise": True}, "surprise"),
    ({"seed": "seven"}, "seed"),
    ({"seed": -1}, "seed"),
    ({"greentrainer": {"rho_policy": {"type": "fixed", "rho": 2}}}, "greentrainer.rho_policy.rho"),
    ({"greentrainer": {"rho_policy": {"type": "fixed", "rho": 0.6}, "deadline": "2001-01-01T00:00:00Z"}},
     "greentrainer.rho_policy.deadline"),
    ({"greentrainer": {"method": "magic"}}, "greentrainer.method"),
])
def test_bad_job_requests_are_bad_requests_naming_the_param(
        client: openai.OpenAI, body: dict[str, object], param: str) -> None:
    training = _upload(client)
    payload: dict[str, object] = {"model": "smollm2-135m-instruct", "training_file": training,
                                  **body}
    with pytest.raises(openai.BadRequestError) as info:
        client.post("/fine_tuning/jobs", body=payload, cast_to=httpx.Response)
    error = info.value.body
    assert isinstance(error, dict) and error["param"] == param, error
    assert error["type"] == "invalid_request_error" and error["message"]


def test_another_teams_objects_are_not_found_and_a_bad_key_is_unauthenticated(
        api: Api, client: openai.OpenAI) -> None:
    other = api.new_team()
    theirs_file = api.upload(other)
    theirs_job = api.job_id(other)
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(theirs_file)
    with pytest.raises(openai.NotFoundError):
        client.files.content(theirs_file)
    with pytest.raises(openai.NotFoundError):
        client.files.delete(theirs_file)
    for call in (client.fine_tuning.jobs.retrieve, client.fine_tuning.jobs.cancel,
                 client.fine_tuning.jobs.pause, client.fine_tuning.jobs.resume,
                 client.fine_tuning.jobs.list_events, client.fine_tuning.jobs.checkpoints.list):
        with pytest.raises(openai.NotFoundError):
            call(theirs_job)
    with pytest.raises(openai.BadRequestError) as info:
        client.fine_tuning.jobs.create(model="smollm2-135m-instruct", training_file=theirs_file)
    assert info.value.body["param"] == "training_file"  # type: ignore[index]
    assert theirs_file not in [f.id for f in client.files.list()]
    with openai.OpenAI(api_key="gt_wrong", base_url=f"{api.client.base_url}/v1",
                       max_retries=0) as stranger:
        with pytest.raises(openai.AuthenticationError):
            stranger.files.list()


def test_a_file_an_unfinished_job_uses_cannot_be_deleted(client: openai.OpenAI) -> None:
    training = _upload(client)
    job = client.fine_tuning.jobs.create(model="smollm2-135m-instruct", training_file=training)
    with pytest.raises(openai.ConflictError) as info:
        client.files.delete(training)
    assert job.id in info.value.message
    client.fine_tuning.jobs.cancel(job.id)
    assert client.files.delete(training).deleted is True


def test_oversize_uploads_missing_parts_and_bad_cursors_are_4xx_in_openais_shape(
        api: Api, client: openai.OpenAI) -> None:
    from tests.service.conftest import UPLOAD_LIMIT_BYTES

    big = _jsonl([{"prompt": "p" * 1000, "completion": "c"}] * (UPLOAD_LIMIT_BYTES // 1000 + 8))
    with pytest.raises(openai.APIStatusError) as info:
        client.files.create(file=("big.jsonl", big), purpose="fine-tune")
    assert info.value.status_code == 413 and info.value.body["param"] == "file"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as missing:
        client.post("/files", body=None, cast_to=httpx.Response,
                    options={"headers": {"Content-Type": "multipart/form-data; boundary=x"}},
                    files=[("purpose", (None, b"fine-tune"))])
    assert missing.value.body["param"] == "file"  # type: ignore[index]
    job = client.fine_tuning.jobs.create(model="smollm2-135m-instruct",
                                         training_file=_upload(client))
    with pytest.raises(openai.BadRequestError) as cursor:
        client.fine_tuning.jobs.list_events(job.id, after="yesterday")
    assert cursor.value.body["param"] == "after"  # type: ignore[index]
    r = api.client.get("/v1/files", params={"after": "a\x00b"},
                       headers={"Authorization": f"Bearer {client.api_key}"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


def test_a_running_job_estimates_its_finish_from_its_epochs(api: Api, client: openai.OpenAI,
                                                           team: dict[str, str]) -> None:
    from service.models import Job, JobEpoch, utcnow
    from tests.service.test_cancel import _job_in

    job_id = _job_in(api, team, JobStatus.RUNNING)  # 3 epochs by default
    assert client.fine_tuning.jobs.retrieve(job_id).estimated_finish is None  # no epoch yet
    with api.factory() as session:
        session.add(JobEpoch(job_id=job_id, epoch_index=0, rho=0.6, selected_tensor_count=1,
                             selected_tensor_names=["w"], predicted_flops=1.0,
                             executed_flops=1.0, full_ft_flops=2.0, wall_seconds=600.0,
                             loss=1.5, created_at=utcnow()))
        session.get_one(Job, job_id).last_finished_epoch = 0
        session.commit()
    before = time.time()
    job = client.fine_tuning.jobs.retrieve(job_id)
    assert job.status == "running" and job.estimated_finish is not None
    assert before + 2 * 600 - 5 <= job.estimated_finish <= time.time() + 2 * 600 + 5
    [checkpoint] = client.fine_tuning.jobs.checkpoints.list(job_id).data
    assert checkpoint.metrics.train_loss == 1.5 and checkpoint.step_number > 0
