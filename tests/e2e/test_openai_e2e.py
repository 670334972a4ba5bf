"""The OpenAI SDK drives a whole job run by a real worker process (Postgres + Redis): upload,
create, follow the events until it succeeds, then its checkpoints (one per epoch, with the
epoch's loss), result files (downloadable), trained tokens and fine-tuned model name."""

from __future__ import annotations

import json
import time

import openai

from tests.core.tiny import ROWS
from tests.e2e.conftest import Stack


def test_a_job_created_with_the_openai_sdk_runs_to_the_end(production_stack: Stack) -> None:
    stack = production_stack
    stack.start_worker()
    key = stack.team()["Authorization"].removeprefix("Bearer ")
    sdk = openai.OpenAI(api_key=key, base_url=f"{stack.client.base_url}/v1", max_retries=0)
    lines = [json.dumps({"prompt": s, "completion": t}) for s, t in (ROWS * 4)[:8]]
    training = sdk.files.create(file=("train.jsonl", "\n".join(lines).encode()),
                                purpose="fine-tune")
    job = sdk.fine_tuning.jobs.create(
        model=str(stack.model_dir), training_file=training.id, suffix="e2e",
        hyperparameters={"n_epochs": 2, "batch_size": 2},
        extra_body={"greentrainer": {"gpu_class": stack.gpu_class, "max_length": 64,
                                     "rho_policy": {"type": "fixed", "rho": 0.6}}})
    deadline = time.monotonic() + 240
    while job.status not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, f"timed out: {job}"
        time.sleep(0.3)
        job = sdk.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model == f"ft:{stack.model_dir}:e2e:{job.id}"
    assert job.trained_tokens is not None and job.trained_tokens > 0
    assert job.finished_at is not None and job.estimated_finish is None

    checkpoints = sdk.fine_tuning.jobs.checkpoints.list(job.id).data
    epochs = stack.client.get(f"/jobs/{job.id}/epochs",
                              headers={"Authorization": f"Bearer {key}"}).json()
    assert [c.step_number for c in checkpoints] == [8, 4]  # 8 examples / batch 2, newest first
    assert [c.metrics.train_loss for c in checkpoints] == [e["loss"] for e in reversed(epochs)]
    assert checkpoints[0].fine_tuning_job_id == job.id

    assert job.result_files
    for file_id in job.result_files:
        result = sdk.files.retrieve(file_id)
        assert result.purpose == "fine-tune-results"
        assert len(sdk.files.content(file_id).read()) == result.bytes
    events = list(sdk.fine_tuning.jobs.list_events(job.id, limit=100))
    metrics = [e for e in events if e.type == "metrics"]
    assert len(metrics) == 2 and all(e.level == "info" for e in metrics)
    sdk.close()
