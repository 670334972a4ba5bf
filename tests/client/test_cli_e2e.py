"""The CLI end to end on a real stack (the API, the dispatcher loop and a Celery worker process
training a tiny model, in the embedded mode): upload and submit with `jobs create --file
--watch`, then read the epochs and download every output."""

from __future__ import annotations

import json
from pathlib import Path

from tests.client.conftest import cli
from tests.core.tiny import ROWS
from tests.e2e.conftest import Stack, embedded_stack  # noqa: F401


def test_a_job_created_and_watched_from_the_cli_trains_and_its_outputs_download(
        embedded_stack: Stack, tmp_path: Path) -> None:
    stack = embedded_stack
    stack.start_worker()
    key = stack.team()["Authorization"].removeprefix("Bearer ")
    url = str(stack.client.base_url)
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(json.dumps({"source": s, "target": t}) for s, t in (ROWS * 4)[:8]))
    watched = cli("jobs", "create", "--file", str(data), "--model", str(stack.model_dir),
                  "--gpu-class", stack.gpu_class, "--epochs", "2", "--batch-size", "4",
                  "--max-length", "64", "--rho-schedule", "0.5,1.0", "--watch", base_url=url, key=key,
                  timeout=400)
    assert watched.returncode == 0, (watched.stdout, watched.stderr, stack.worker_log()[-3000:])
    lines = watched.stdout.splitlines()
    job_id = lines[0].removeprefix("created ")
    assert any(" epoch_start " in line and "epoch 2/2" in line and "rho 1.00" in line
               for line in lines), lines
    assert lines[-1].startswith(f"job {job_id} succeeded: 2 epoch(s), CO2 "), lines
    assert "\r" not in watched.stderr

    epochs = json.loads(cli("jobs", "checkpoints", job_id, "--json", base_url=url,
                            key=key).stdout)
    assert [(e["epoch_index"], e["rho"]) for e in epochs] == [(0, 0.5), (1, 1.0)]
    assert all(e["kg_co2"] > 0 and e["loss"] is not None for e in epochs)
    shown_co2 = float(lines[-1].rsplit("CO2 ", 1)[1].removesuffix(" g"))
    assert abs(shown_co2 - 1000 * sum(e["kg_co2"] for e in epochs)) < 0.01

    downloaded = cli("jobs", "download", job_id, "-o", str(tmp_path / "out"), "--json",
                     base_url=url, key=key)
    assert downloaded.returncode == 0, downloaded.stderr
    files = [json.loads(line) for line in downloaded.stdout.splitlines()]
    assert {"model", "delta", "metrics"} <= {f["kind"] for f in files}
    for f in files:
        assert Path(f["path"]).stat().st_size == f["size_bytes"]
    assert not list((tmp_path / "out").glob("*.part"))
