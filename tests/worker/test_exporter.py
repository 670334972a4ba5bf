"""The worker's exporter over HTTP after a real run (energy, steps, no stale job gauges), and
every metric the documented dashboard queries (docs/deploy.md) name is exported by the API or
a worker."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from sqlalchemy import func, select

from service.app import create_app
from service.models import JobEpoch
from tests.s3 import free_port
from tests.service.conftest import LiveServer
from tests.worker.conftest import Bench
from tests.worker.test_runner import run
from worker.exporter import METRICS

ROOT = Path(__file__).resolve().parents[2]
NVML_ONLY = {"greentrainer_worker_gpu_utilization_ratio"}  # no GPU here: checked by name below


def _value(text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    assert match, f"{name} not exported"
    return float(match.group(1))


def _queries() -> set[str]:
    doc = (ROOT / "docs" / "deploy.md").read_text()
    block = doc.split("```promql", 1)[1].split("```", 1)[0]
    return set(re.findall(r"greentrainer_[a-z_]+", block))


def test_the_exporter_reports_a_runs_energy_and_steps_and_the_docs_queries_exist(
        bench: Bench) -> None:
    server = METRICS.serve(free_port(), None, addr="127.0.0.1")
    port = server.server_address[1]
    try:
        before = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        job_id = bench.job()
        assert run(bench, job_id) == "succeeded"
        worker_text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    finally:
        server.shutdown()
        server.server_close()
    with bench.factory() as session:
        energy = session.scalar(select(func.sum(JobEpoch.energy_kwh))
                                .where(JobEpoch.job_id == job_id)) or 0.0
    gained = (_value(worker_text, "greentrainer_worker_energy_kwh_total")
              - _value(before, "greentrainer_worker_energy_kwh_total"))
    assert abs(gained - energy) <= 1e-12 + 1e-9 * energy
    steps = (_value(worker_text, "greentrainer_worker_steps_total")
             - _value(before, "greentrainer_worker_steps_total"))
    assert steps == 4  # 2 epochs x 2 batches of 4 of the bench's rows
    assert f'job_id="{job_id}"' not in worker_text  # the finished job's gauges are gone

    app = create_app(bench.settings)
    with LiveServer(app) as api:
        httpx.get(f"{api.base_url}/healthz")
        api_text = httpx.get(f"{api.base_url}/metrics").text
    app.state.context.engine.dispose()
    # A labelled gauge with no job running has its TYPE line and no sample.
    exported = set(re.findall(r"^(?:# TYPE )?(greentrainer_[a-z_]+)", api_text + worker_text,
                              re.M))
    assert _queries() - NVML_ONLY <= exported, _queries() - NVML_ONLY - exported
    assert all(name in (ROOT / "worker" / "exporter.py").read_text() for name in NVML_ONLY)
