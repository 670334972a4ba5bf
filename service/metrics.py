"""Prometheus metrics at /metrics: job counts by status, queue length, FLOPs, energy and CO2
totals (read from the database at scrape time, so every API process reports the same numbers),
and HTTP request counts and latencies.

Under `greentrainer serve --workers N` the request counters live in prometheus-client's
multiprocess mode: each process writes its own into files under ``PROMETHEUS_MULTIPROC_DIR``
(`multiprocess_dir`, set by the command before the processes start) and /metrics, whichever
process answers it, sums every process's files."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.models import Job, JobEpoch
from service.states import WAITING, JobStatus

access_log = logging.getLogger("service.access")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> Path | None:
    """The directory of the processes' counter files, when several API processes serve."""
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def prepare_multiprocess_dir(directory: Path) -> None:
    """Before the API processes start: an empty directory, named in the environment they
    inherit (prometheus-client reads it when it is imported, so the processes must be new)."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):  # counters of an earlier run's processes
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(directory)


class JobsCollector(Collector):
    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory

    def collect(self) -> Iterator[Metric]:
        with self.factory() as session:
            counts = session.execute(select(Job.status, func.count()).group_by(Job.status))
            by_status = {status: count for status, count in counts}
            totals = session.execute(select(
                func.coalesce(func.sum(JobEpoch.executed_flops), 0.0),
                func.coalesce(func.sum(JobEpoch.full_ft_flops), 0.0),
                func.coalesce(func.sum(JobEpoch.energy_kwh), 0.0),
                func.coalesce(func.sum(JobEpoch.kg_co2), 0.0),
            )).one()
        jobs = GaugeMetricFamily("greentrainer_jobs", "Jobs by status.", labels=["status"])
        for status in JobStatus:
            jobs.add_metric([status.value], by_status.get(status.value, 0))
        yield jobs
        yield GaugeMetricFamily("greentrainer_queue_length", "Jobs waiting for a GPU.",
                                value=sum(by_status.get(s.value, 0) for s in WAITING))
        names = [("greentrainer_executed_flops", "FLOPs executed by all recorded epochs."),
                 ("greentrainer_full_ft_flops", "Full fine-tuning FLOPs of the same epochs."),
                 ("greentrainer_energy_kwh", "Energy of all recorded epochs (kWh)."),
                 ("greentrainer_co2_kg", "CO2 emitted by all recorded epochs (kg).")]
        for (name, help_), value in zip(names, totals, strict=True):
            yield GaugeMetricFamily(name, help_, value=float(value or 0.0))


class HttpMetrics:
    """ASGI middleware: counts and times requests by route template, method and status, and
    writes one structured access-log line per request."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        if multiprocess_dir() is not None:
            # Written to this process's files; /metrics reads every process's (make_registry).
            registry = CollectorRegistry()
        self.requests = Counter("greentrainer_http_requests", "HTTP requests.",
                                ["method", "route", "status"], registry=registry)
        self.latency = Histogram("greentrainer_http_request_seconds", "HTTP request latency.",
                                 ["method", "route"], registry=registry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            seconds = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", "unmatched")
            self.requests.labels(scope["method"], route, str(status)).inc()
            self.latency.labels(scope["method"], route).observe(seconds)
            access_log.info("request", extra={"method": scope["method"], "path": scope["path"],
                                              "route": route, "status": status,
                                              "duration_ms": round(seconds * 1000, 2)})


def make_registry(factory: sessionmaker[Session]) -> CollectorRegistry:
    """What /metrics exposes: the database's totals and the HTTP counters (of every API process
    in multiprocess mode)."""
    registry = CollectorRegistry()
    registry.register(JobsCollector(factory))
    if multiprocess_dir() is not None:
        multiprocess.MultiProcessCollector(registry)
    return registry
