"""Epoch rows written straight into the database for the tests of the dashboard's queries and
formulas (`/stats/overview`, `/jobs/{id}/series`, the admin's team table), which need known
figures. The browser's job lifecycle runs on the real worker (`test_browser.py`); this only
records a finished run with the service's own `transition`, `record_epoch` and
`record_submission_intensity`, as the worker and the scheduler do."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from greentrainer_core.config import EpochRecord
from service.db import session_scope
from service.job_records import EpochMeasurement, record_epoch
from service.jobs import transition
from service.models import Job
from service.savings import record_submission_intensity
from service.states import JobStatus

LAYERS = 6
TENSORS_PER_LAYER = ("self_attn.q_proj.weight", "self_attn.v_proj.weight", "mlp.up_proj.weight",
                     "mlp.down_proj.weight")
FULL_FT_FLOPS_PER_EPOCH = 3.6e15


def planned_epochs(epochs: int, submitted_g_per_kwh: float
                   ) -> list[tuple[EpochRecord, EpochMeasurement]]:
    """Intensity falling then rising, rho higher when the grid is cleaner, and the trained
    tensors concentrated in the top layers as rho shrinks."""
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
        records.append((EpochRecord(
            epoch=index, rho=rho, selected=names, predicted_flops=int(FULL_FT_FLOPS_PER_EPOCH * rho),
            executed_flops=int(executed), full_flops=int(FULL_FT_FLOPS_PER_EPOCH),
            wall_s=0.4 + 0.1 * index, loss=2.4 / (1 + 0.6 * index)), EpochMeasurement(
            carbon_intensity_g_per_kwh=intensity, carbon_intensity_source="trace:gb-2020",
            energy_kwh=energy, kg_co2=energy * intensity / 1000, energy_is_estimate=True)))
    return records


def record_run(factory: sessionmaker[Session], job_id: str, *, epochs: int = 3,
               submitted_g_per_kwh: float = 240.0) -> list[tuple[EpochRecord, EpochMeasurement]]:
    """Record a finished run of the queued job ``job_id``: c_ref, running, epochs, succeeded."""
    records = planned_epochs(epochs, submitted_g_per_kwh)
    with session_scope(factory) as session:
        job = session.get_one(Job, job_id)
        record_submission_intensity(session, job.id, submitted_g_per_kwh, "trace:gb-2020")
        transition(session, job, JobStatus.RUNNING, message="started on cpu0")
        for record in records:
            record_epoch(session, job, *record)
        transition(session, job, JobStatus.SUCCEEDED, result={"epochs": epochs})
    return records
