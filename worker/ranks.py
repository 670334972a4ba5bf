"""A job on several devices of this worker: data-parallel training, rank 0 in this process.

A job of ``gpus`` N > 1 trains with the core's `DistributedTrainer`: this worker process is rank 0
(`rank_zero_here`), so its lease, heartbeats, carbon decisions, pauses, epoch records,
checkpoints and outcome are a one-device job's, driven by rank 0's events; ranks 1..N-1 are
spawned processes (`helper_rank`) that load the same job (the same model, data and checkpoint),
train their share of each global batch and exit with the run. NCCL on GPUs (rank r on cuda:r of
the worker's devices), gloo on CPUs.

Energy is summed over ranks: rank 0's meter covers the worker's GPUs (all N) and its own CPU and
RAM; each other rank measures its own process's CPU and RAM over the same epoch and the sums
reach rank 0 at the epoch's end (`epoch_energy`, one all-reduce that every rank makes after each
`EpochRecord`). Executed FLOPs are summed by the `DistributedTrainer` itself.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

from service.db import make_engine, make_session_factory, session_scope
from service.models import Job
from service.settings import Settings
from service.storage import make_store
from worker.energy import EnergyMeter, EpochEnergy
from worker.job_inputs import JobInputs, load_inputs

ENERGY_FIELDS = 6  # energy_kwh, kg_co2, cpu_kwh, gpu_kwh, ram_kwh, estimates


@dataclass(frozen=True)
class RankSpec:
    """What a spawned rank needs to rebuild rank 0's trainer (pickled by spawn)."""

    settings: Settings
    job_id: str
    checkpoint: str | None  # a local file: the checkpoint rank 0 resumes from


def device_for(rank: int) -> str:
    import torch

    return f"cuda:{rank}" if torch.cuda.is_available() else "cpu"


def make_trainer(inputs: JobInputs, gpus: int, rho: Any) -> Any:
    """The job's trainer: the core's `Trainer`, or on several devices its `DistributedTrainer`
    (inside `job_ranks`)."""
    import torch

    from greentrainer_core.distributed import DistributedTrainer
    from greentrainer_core.train import Trainer

    torch.manual_seed(inputs.config.seed)  # the same initialisation (LoRA, ...) on every rank
    kind = DistributedTrainer if gpus > 1 else Trainer
    return kind(inputs.model, inputs.tokenizer, inputs.examples, inputs.config, rho=rho,
                validation=inputs.validation)


@contextmanager
def job_ranks(gpus: int, spec: RankSpec) -> Iterator[None]:
    """Ranks 1..gpus-1 of the job beside this process, rank 0, while the block runs (nothing
    for one device)."""
    if gpus <= 1:
        with nullcontext():
            yield
        return
    from greentrainer_core.distributed import rank_zero_here

    with rank_zero_here(helper_rank, gpus, spec):
        yield


def epoch_energy(own: EpochEnergy | None, carbon_intensity_g_per_kwh: float | None,
                 gpus: int) -> EpochEnergy | None:
    """Rank 0's epoch energy plus the other ranks' (their CPU and RAM), with their CO2 at the
    epoch's intensity; ``own`` for one device. Every rank calls it once per epoch (a
    collective)."""
    if gpus <= 1:
        return own
    from greentrainer_core.distributed import sum_over_ranks

    others = [sum_over_ranks(x) - x for x in _energy_vector(own)]
    if own is None and not others[0]:
        return None
    base = own or EpochEnergy(0.0, 0.0, 0.0, 0.0, 0.0, True)
    kg_others = others[1] if carbon_intensity_g_per_kwh is None else \
        others[0] * carbon_intensity_g_per_kwh / 1000.0
    return EpochEnergy(energy_kwh=base.energy_kwh + others[0], kg_co2=base.kg_co2 + kg_others,
                       cpu_kwh=base.cpu_kwh + others[2], gpu_kwh=base.gpu_kwh + others[3],
                       ram_kwh=base.ram_kwh + others[4],
                       is_estimate=base.is_estimate or others[5] > 0 or own is None)


def _energy_vector(energy: EpochEnergy | None) -> list[float]:
    """One rank's epoch energy as the numbers `epoch_energy` sums (an unmeasured epoch: zeros,
    counted as an estimate)."""
    if energy is None:
        return [0.0] * (ENERGY_FIELDS - 1) + [1.0]
    return [energy.energy_kwh, energy.kg_co2, energy.cpu_kwh, energy.gpu_kwh, energy.ram_kwh,
            1.0 if energy.is_estimate else 0.0]


def free_memory() -> None:
    """Give the finished job's model and optimizer memory back before the next job."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def helper_rank(rank: int, world_size: int, spec: RankSpec) -> None:
    """Rank ``rank`` > 0 of the job (in a spawned process, its group joined): load the job as
    rank 0 did, train its share of every batch, add its energy to each epoch's."""
    from greentrainer_core.config import EpochRecord

    os.environ.setdefault("TQDM_DISABLE", "1")
    engine = make_engine(spec.settings.database_url, pool_size=1)
    try:
        with session_scope(make_session_factory(engine)) as session:
            job = session.get(Job, spec.job_id)
            if job is None:  # rank 0 holds the job's lease: it is there
                raise RuntimeError(f"job {spec.job_id} is missing")
            inputs = load_inputs(session, make_store(spec.settings), spec.settings, job,
                                 device_for(rank))
    finally:
        engine.dispose()
    trainer = make_trainer(inputs, world_size, rho=1.0)  # rank 0 decides rho and selection
    if spec.checkpoint is not None:
        trainer.load_checkpoint(spec.checkpoint)
    meter = EnergyMeter(gpu_ids=None)  # this process's CPU and RAM; the GPUs are rank 0's
    meter.start(None)
    for event in trainer.events():
        if isinstance(event, EpochRecord):
            epoch_energy(meter.stop(), None, world_size)
            meter.start(None)
    meter.stop()
