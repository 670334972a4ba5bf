"""/metrics under `greentrainer serve --workers 2`: whichever process answers, the request
counters are the sum of both processes' (prometheus-client's multiprocess mode)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, multiprocess

from greentrainer.commands.serve import migrate_main
from tests.commands.test_serve_up import ROOT, _free_port, _ready, fresh  # noqa: F401 (fixture)
from tests.commands.test_serving import _api_processes, _wait_for

REQUESTS = 60
COUNTER = re.compile(r'^greentrainer_http_requests_total\{method="GET",route="/teams",'
                     r'status="401"\} (\S+)$', re.M)


def _unauthorised_requests(text: str) -> float:
    return sum(float(value) for value in COUNTER.findall(text))


def _per_process(directory: Path, scratch: Path) -> list[float]:
    """Each process's own count, read from its file alone."""
    counts = []
    for index, db in enumerate(sorted(directory.glob("counter_*.db"))):
        alone = scratch / str(index)
        alone.mkdir(parents=True)
        shutil.copy(db, alone / db.name)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(alone))
        counts.append(sum(sample.value for metric in registry.collect()
                          for sample in metric.samples
                          if sample.name == "greentrainer_http_requests_total"
                          and sample.labels.get("route") == "/teams"))
    return counts


def test_metrics_sum_the_request_counters_of_every_api_process(fresh: Path) -> None:  # noqa: F811
    url = f"sqlite:///{fresh / 'metrics.sqlite'}"
    assert migrate_main(["--database-url", url]) == 0
    port, directory = _free_port(), fresh / "prometheus"
    server = subprocess.Popen(
        [sys.executable, "-m", "greentrainer.cli", "serve", "--port", str(port), "--workers",
         "2", "--database-url", url], cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PROMETHEUS_MULTIPROC_DIR": str(directory)})
    try:
        assert _ready(server, port) == 200, "serve --workers 2 did not answer"
        assert _wait_for(lambda: len(_api_processes(server, port)) == 2)
        base = f"http://127.0.0.1:{port}"
        for _ in range(REQUESTS):  # a new connection each: the kernel spreads them
            assert httpx.get(f"{base}/teams").status_code == 401
        answers = {_unauthorised_requests(httpx.get(f"{base}/metrics").text) for _ in range(10)}
        assert answers == {REQUESTS}  # every answer, from either process, counts all of them
        shares = _per_process(directory, fresh / "alone")
        assert len(shares) == 2 and sum(shares) == REQUESTS
        assert min(shares) > 0, shares  # both processes served some
    finally:
        server.terminate()
        server.wait(timeout=60)
