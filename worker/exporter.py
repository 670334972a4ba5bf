"""A worker's Prometheus exporter (`greentrainer worker --metrics-port P`): GPU utilisation and
memory of the GPUs it owns (NVML, when pynvml is installed), the energy and CO2 its epochs
measured, and the progress of the job it runs. One worker process per GPU, so one scrape target
per GPU of a machine; docs/deploy.md has the dashboard's queries."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("worker.exporter")


class GpuCollector(Collector):
    """Utilisation and memory of ``gpu_ids`` read from NVML at scrape time; nothing without
    pynvml or a driver (measurement never fails the worker)."""

    def __init__(self, gpu_ids: list[int] | None) -> None:
        self.gpu_ids = gpu_ids or []
        self.nvml: Any = None
        if self.gpu_ids:
            try:
                import pynvml

                pynvml.nvmlInit()
                self.nvml = pynvml
            except Exception as exc:  # no pynvml, no driver: the metric is absent
                log.info("no GPU metrics: %s", exc)

    def collect(self) -> Iterator[Metric]:
        if self.nvml is None:
            return
        utilisation = GaugeMetricFamily("greentrainer_worker_gpu_utilization_ratio",
                                        "GPU busy share over the last sample period.",
                                        labels=["gpu"])
        memory = GaugeMetricFamily("greentrainer_worker_gpu_memory_used_bytes",
                                   "GPU memory in use.", labels=["gpu"])
        for gpu in self.gpu_ids:
            try:
                handle = self.nvml.nvmlDeviceGetHandleByIndex(gpu)
                rates = self.nvml.nvmlDeviceGetUtilizationRates(handle)
                used = self.nvml.nvmlDeviceGetMemoryInfo(handle).used
            except Exception as exc:
                log.warning("GPU %s not read: %s", gpu, exc)
                continue
            utilisation.add_metric([str(gpu)], rates.gpu / 100.0)
            memory.add_metric([str(gpu)], float(used))
        yield utilisation
        yield memory


class WorkerMetrics:
    """This worker process's metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.energy = Counter("greentrainer_worker_energy_kwh", "Energy of the epochs this "
                              "worker finished (kWh).", registry=self.registry)
        self.co2 = Counter("greentrainer_worker_co2_kg", "CO2 of the epochs this worker "
                           "finished (kg).", registry=self.registry)
        self.steps = Counter("greentrainer_worker_steps", "Training steps this worker ran.",
                             registry=self.registry)
        self.epoch = Gauge("greentrainer_worker_job_epoch", "Epoch of the job running here.",
                           ["job_id"], registry=self.registry)
        self.step = Gauge("greentrainer_worker_job_step", "Step in the epoch of the job "
                          "running here.", ["job_id"], registry=self.registry)
        self.gpus: GpuCollector | None = None

    def serve(self, port: int, gpu_ids: list[int] | None, addr: str = "0.0.0.0") -> Any:
        """Serve /metrics on ``port`` (all interfaces by default: Prometheus scrapes it from
        elsewhere); returns the HTTP server (``shutdown()`` stops it)."""
        if self.gpus is None:
            self.gpus = GpuCollector(gpu_ids)
            self.registry.register(self.gpus)
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        return server

    def stepped(self, job_id: str, epoch: int, step: int) -> None:
        self.steps.inc()
        self.epoch.labels(job_id).set(epoch)
        self.step.labels(job_id).set(step)

    def epoch_measured(self, energy_kwh: float | None, kg_co2: float | None) -> None:
        self.energy.inc(energy_kwh or 0.0)
        self.co2.inc(kg_co2 or 0.0)

    def job_ended(self, job_id: str) -> None:
        for gauge in (self.epoch, self.step):
            try:
                gauge.remove(job_id)
            except KeyError:  # the job ran no step here
                pass


METRICS = WorkerMetrics()
