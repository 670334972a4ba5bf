"""A stand-in worker for the dashboard's browser tests: it drives a job through its lifecycle
with the service's own domain functions (`transition`, `record_epoch`, `register_artifact`,
`record_submission_intensity`, which appends an event), in a background thread, exactly as the real worker records a run.

The real Celery worker (`worker/`) is built in parallel; once both have landed the lead replaces
this helper with the real worker (an embedded CPU worker on the test's database).
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from service.db import session_scope
from service.job_records import EpochRecord, record_epoch, register_artifact
from service.jobs import transition
from service.models import Job, utcnow
from service.savings import record_submission_intensity
from service.states import JobStatus
from service.storage import BlobStore

LAYERS = 6
TENSORS_PER_LAYER = ("self_attn.q_proj.weight", "self_attn.v_proj.weight", "mlp.up_proj.weight",
                     "mlp.down_proj.weight")
FULL_FT_FLOPS_PER_EPOCH = 3.6e15


def planned_epochs(epochs: int, submitted_g_per_kwh: float) -> list[EpochRecord]:
    """The epochs this fake run records: intensity falling then rising, rho higher when the
    grid is cleaner, and the trained tensors concentrated in the top layers as rho shrinks."""
    records = []
    for index in range(epochs):
        intensity = submitted_g_per_kwh * (0.55 + 0.15 * abs(index - 1))
        rho = round(min(1.0, max(0.3, 1.2 - intensity / submitted_g_per_kwh)), 2)
        first_layer = int(round((1 - rho) * LAYERS))
        names = [f"model.layers.{layer}.{tensor}" for layer in range(first_layer, LAYERS)
                 for tensor in TENSORS_PER_LAYER[: 2 + index % 3]]
        names.append("lm_head.weight")
        executed = FULL_FT_FLOPS_PER_EPOCH * rho * 0.97
        energy = 0.012 * executed / FULL_FT_FLOPS_PER_EPOCH + 0.002
        records.append(EpochRecord(
            epoch_index=index, rho=rho, selected_tensor_count=len(names),
            selected_tensor_names=names, predicted_flops=FULL_FT_FLOPS_PER_EPOCH * rho,
            executed_flops=executed, full_ft_flops=FULL_FT_FLOPS_PER_EPOCH,
            wall_seconds=0.4 + 0.1 * index, carbon_intensity_g_per_kwh=intensity,
            carbon_intensity_source="trace:gb-2020", loss=2.4 / (1 + 0.6 * index),
            energy_kwh=energy, kg_co2=energy * intensity / 1000, energy_is_estimate=True))
    return records


@dataclass
class FakeWorker:
    """Runs one job in a thread: queued -> waiting_for_green -> running -> (epochs) ->
    succeeded."""

    factory: sessionmaker[Session]
    store: BlobStore
    epochs: int = 3
    epoch_delay_s: float = 0.6
    submitted_g_per_kwh: float = 240.0
    wait_s: float = 0.6
    result: dict[str, object] = field(default_factory=lambda: {
        "rouge": {"rouge1": 0.4213, "rouge2": 0.1875, "rougeL": 0.3991}})
    error: BaseException | None = None

    def start(self, job_id: str) -> threading.Thread:
        thread = threading.Thread(target=self._guarded, args=(job_id,), daemon=True)
        thread.start()
        return thread

    def _guarded(self, job_id: str) -> None:
        try:
            self.run(job_id)
        except BaseException as exc:  # surfaced by the test through `error`
            self.error = exc

    def run(self, job_id: str) -> list[EpochRecord]:
        """Wait for a green window of ``wait_s``, then run and record every epoch."""
        records = planned_epochs(self.epochs, self.submitted_g_per_kwh)
        with session_scope(self.factory) as session:
            job = session.get_one(Job, job_id)
            record_submission_intensity(session, job.id, self.submitted_g_per_kwh,
                                        "trace:gb-2020")
            # What the scheduler writes when it plans a later, cleaner start.
            job.planned_start_at = utcnow() + timedelta(seconds=self.wait_s)
            transition(session, job, JobStatus.WAITING_FOR_GREEN,
                       message="waiting for a green window")
        time.sleep(self.wait_s)
        with session_scope(self.factory) as session:
            transition(session, session.get_one(Job, job_id), JobStatus.RUNNING,
                       message="started on cpu0")
        for record in records:
            time.sleep(self.epoch_delay_s)
            with session_scope(self.factory) as session:
                record_epoch(session, session.get_one(Job, job_id), record)
        with tempfile.TemporaryDirectory() as folder:
            metrics = Path(folder) / "metrics.json"
            metrics.write_text(json.dumps(self.result))
            with session_scope(self.factory) as session:
                job = session.get_one(Job, job_id)
                register_artifact(session, self.store, job, metrics, kind="metrics")
                transition(session, job, JobStatus.SUCCEEDED, result=self.result)
        return records
