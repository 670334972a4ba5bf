"""A really full file system (a tmpfs of a few pages mounted over the directory), not a simulated
ENOSPC:

- the artifact store's directory is too small for the job's outputs, with a real `greentrainer
  worker` process: the job ends `failed` with `disk_full` naming the store, no artifact is
  recorded or served, no half-written file stays on that file system; once there is space
  (the tmpfs remounted bigger) the same job submitted again succeeds;
- the worker's checkpoint directory is too small for one checkpoint: the same, and no
  checkpoint (whole or partial) is left that a retry could resume from;
- the core's `Trainer.save_checkpoint` on a full file system raises ENOSPC naming the file and
  leaves nothing behind.

Needs root (mount); without it the tests are skipped locally and fail in CI.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require
from tests.e2e.conftest import Stack, _stack
from tests.hardening.private_services import PrivateRedis, redis_available
from tests.service.conftest import PostgresDatabases, _pg_admin_url

TERMINAL = ("succeeded", "failed", "cancelled")
EPOCHS = 2
JOB = {"hyperparameters": {"epochs": EPOCHS, "batch_size": 2, "max_length": 64}, "rho_policy": {"type": "fixed", "rho": 0.8}}
ROOMY_BYTES = 64 << 20  # after "freeing space": far more than the tiny model's outputs


@contextmanager
def small_fs(directory: Path, size_bytes: int) -> Iterator[Path]:
    """``directory`` on a tmpfs of ``size_bytes``, unmounted on exit (even after a failure)."""
    require(os.geteuid() == 0, "root, to mount a small tmpfs")
    directory.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(directory)], capture_output=True, text=True
    )
    require(mounted.returncode == 0, f"mount -t tmpfs (it said: {mounted.stderr.strip()})")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=True)


def grow(directory: Path, size_bytes: int) -> None:
    """Free space the way an operator would: the same file system, bigger, files kept."""
    subprocess.run(["mount", "-o", f"remount,size={size_bytes}", str(directory)], check=True)


def files_under(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def too_small_for(model_dir: Path) -> int:
    """Half the tiny model's weights: no model archive and no checkpoint (weights + AdamW
    moments) fits; a data set upload (about 1 KB) does."""
    weights = sum(p.stat().st_size for p in model_dir.glob("*.safetensors"))
    assert weights > 64 << 10, f"the tiny model ({weights} bytes) is too small for this test"
    return weights // 2


# -- the core, in process ------------------------------------------------------------------------


def test_a_checkpoint_on_a_full_fs_raises_enospc_naming_the_file_and_leaves_nothing(tmp_path: Path) -> None:
    import errno

    import torch

    from greentrainer_core.config import TrainConfig
    from greentrainer_core.data import SummaryRow, tokenize_rows
    from greentrainer_core.train import Trainer
    from tests.core.tiny import ROWS, tiny_llama, tiny_tokenizer

    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    examples = tokenize_rows([SummaryRow(i, s, t) for i, (s, t) in enumerate(ROWS[:4])], tokenizer, max_length=32)
    trainer = Trainer(tiny_llama(seed=0), tokenizer, examples, TrainConfig(epochs=1, batch_size=2, max_length=32), rho=1.0)
    trainer.run()
    with small_fs(tmp_path / "ckpt", 32 << 10) as directory:
        path = directory / "epoch-0.pt"
        with pytest.raises(OSError) as raised:
            trainer.save_checkpoint(path)
        assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(path)
        assert files_under(directory) == []  # neither the checkpoint nor its temporary file
        grow(directory, ROOMY_BYTES)
        trainer.save_checkpoint(path)
        assert files_under(directory) == ["epoch-0.pt"]
        state = torch.load(path, map_location="cpu", weights_only=False)
        assert state["epoch"] == trainer.epoch


# -- a real worker process -----------------------------------------------------------------------


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    admin = _pg_admin_url()
    require(admin is not None, "Postgres on 127.0.0.1:5432 (database `test`)")
    require(redis_available(), "redis-server binary")
    assert admin is not None
    redis = PrivateRedis()
    redis.start()
    databases = PostgresDatabases(admin)
    try:
        yield from _stack(tmp_path, databases.create(), redis.url)
    finally:
        databases.drop_all()
        redis.kill()


def _run(stack: Stack, team: dict[str, str]) -> dict[str, Any]:
    job_id = stack.submit(team, **JOB)
    return stack.wait(team, job_id, lambda j: j["status"] in TERMINAL, timeout=180)


def _artifacts(stack: Stack, team: dict[str, str], job_id: str) -> list[dict[str, Any]]:
    r = stack.client.get(f"/jobs/{job_id}/artifacts", headers=team)
    assert r.status_code == 200, r.text
    return list(r.json())


def _fails_for_lack_of_space(stack: Stack, team: dict[str, str], full: Path) -> dict[str, Any]:
    """Run a job with ``full`` (a mount) too small: it fails with disk_full naming that place."""
    job = _run(stack, team)
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "disk_full", job["error"]
    message = job["error"]["message"]
    assert "no space left on device" in message.lower() and str(full) in message, message
    print(f"{full.name} full:", message)
    return job


def test_a_full_artifact_fs_fails_the_job_with_disk_full_and_serves_nothing(stack: Stack) -> None:
    blobs = Path(stack.settings.data_dir) / "blobs"
    with small_fs(blobs, too_small_for(stack.model_dir)):
        stack.start_worker()
        team = stack.team()
        job = _fails_for_lack_of_space(stack, team, blobs)
        assert _artifacts(stack, team, job["id"]) == []
        r = stack.client.get(f"/jobs/{job['id']}/artifacts/art_missing/content", headers=team)
        assert r.status_code == 404
        left = files_under(blobs)
        assert all(name.startswith("datasets/") for name in left), left  # the upload only

        grow(blobs, ROOMY_BYTES)
        again = _run(stack, team)
        assert again["status"] == "succeeded", again
        artifacts = _artifacts(stack, team, again["id"])
        assert {a["filename"] for a in artifacts} == {
            "model.tar.gz", "delta.safetensors", "metrics.json", "README.md",
            *(f"checkpoint-epoch-{k}.safetensors" for k in range(EPOCHS))}
        for artifact in artifacts:
            r = stack.client.get(f"/jobs/{again['id']}/artifacts/{artifact['id']}/content", headers=team)
            assert r.status_code == 200 and len(r.content) == artifact["size_bytes"]
        stack.kill_workers()


def test_a_full_checkpoint_fs_fails_the_job_with_disk_full_and_leaves_no_checkpoint(stack: Stack) -> None:
    checkpoints = Path(stack.settings.data_dir) / "checkpoints"
    with small_fs(checkpoints, too_small_for(stack.model_dir)):
        stack.start_worker()
        team = stack.team()
        job = _fails_for_lack_of_space(stack, team, checkpoints)
        assert job["last_finished_epoch"] is None  # no epoch counted without its checkpoint
        assert files_under(checkpoints) == []  # no partial checkpoint, no temporary file

        grow(checkpoints, ROOMY_BYTES)
        again = _run(stack, team)
        assert again["status"] == "succeeded", again
        epochs = stack.client.get(f"/jobs/{again['id']}/epochs", headers=team).json()
        assert [e["epoch_index"] for e in epochs] == list(range(EPOCHS))
        stack.kill_workers()


# -- the API -------------------------------------------------------------------------------------


def test_an_upload_to_a_full_data_disk_is_507_with_retry_after_and_leaves_nothing(tmp_path: Path) -> None:
    from tests.hardening.conftest import live_api

    with live_api(tmp_path) as api:
        team = api.new_team()
        blobs = Path(api.settings.data_dir) / "blobs"
        with small_fs(blobs, 16 << 10):
            rows = "".join(f'{{"source": "question {i} {"x" * 200}", "target": "answer {i}"}}\n' for i in range(200))
            r = api.client.post("/datasets", files={"file": ("big.jsonl", rows.encode())}, headers=team)
            assert r.status_code == 507, r.text[:300]
            assert int(r.headers["Retry-After"]) >= 1
            assert r.json()["error"]["code"] == "storage_full"
            assert "Traceback" not in r.text and str(blobs) not in r.text  # no server path leaks
            assert files_under(blobs) == []
            grow(blobs, ROOMY_BYTES)
            r = api.client.post("/datasets", files={"file": ("big.jsonl", rows.encode())}, headers=team)
            assert r.status_code == 201, r.text[:300]
