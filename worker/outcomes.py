"""What the worker calls a run's outcomes: the error code and message a failed or crashed job
records, and the log's lines for a finished epoch and a finished job. Pure functions of what a
run produced; `worker.runner` records and logs them."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from greentrainer_core.config import EpochRecord
from greentrainer_core.errors import disk_full_cause
from service.errors import StorageUnavailable
from worker.energy import EpochEnergy
from worker.job_inputs import MissingInput

DISK_FULL = "disk_full"  # the error code of a job that ran out of disk space (checkpoints, artifacts)


def epoch_line(record: EpochRecord, energy: EpochEnergy | None) -> str:
    """The worker log's line for a finished epoch (the dashboard shows the same figures)."""
    share = record.executed_flops / record.full_flops if record.full_flops else 1.0
    line = (f"epoch {record.epoch} done at rho {record.rho:.2f}: loss {record.loss:.4f}, "
            f"{share:.0%} of full fine-tuning's FLOPs, {record.wall_s:.1f} s")
    if energy is not None:
        line += f", {energy.energy_kwh:.3g} kWh, {energy.kg_co2:.3g} kg CO2"
    return line + (" (estimated)" if energy is not None and energy.is_estimate else "")


def result_line(result: dict[str, Any]) -> str:
    """The worker log's line for a job that succeeded: what its ``result`` holds."""
    share = result["executed_flops"] / result["full_ft_flops"] if result["full_ft_flops"] else 1.0
    line = (f"{result['epochs']} epoch(s), {share:.0%} of full fine-tuning's FLOPs, "
            f"{result['energy_kwh']:.3g} kWh, {result['kg_co2']:.3g} kg CO2")
    if "rouge" in result:
        line += f", ROUGE-L {result['rouge']['rougeL']:.1f} on {result['rouge']['n']} examples"
    if "stopped_early" in result:
        line += f"; stopped early ({result['stopped_early']})"
    return line


def crash_code(exc: BaseException) -> str:
    """The code of a crash that is retried: ``disk_full`` names a full disk (checkpoints or
    artifacts; another try may find space), an object store that failed after its retries is
    ``storage_unavailable``, anything else is a ``training_error``."""
    if isinstance(exc, StorageUnavailable):
        return exc.code
    return DISK_FULL if disk_full_cause(exc) is not None else "training_error"


def crash_message(exc: BaseException) -> str:
    """What the job's error says about a crash; a full disk names the path and its free space."""
    if isinstance(exc, StorageUnavailable):
        return exc.message
    full = disk_full_cause(exc)
    if full is None:
        return repr(exc)
    where = Path(str(full.filename)) if full.filename else None
    free = ""
    probe = where
    while probe is not None and not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe is not None and probe.exists():
        free = f", {shutil.disk_usage(probe).free:,} bytes free there"
    return f"no space left on device writing {where or 'a file'}{free} ({full.strerror})"


def error_code(exc: BaseException) -> str:
    """``DataError`` -> ``data_error``: the job's error code names the kind of problem."""
    if isinstance(exc, MissingInput):
        return "missing_input"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()
