"""The energy model fitted from measured epochs (docs/scheduler.md, "Energy model").

Each recorded epoch i of job j gives its wall time t_i, its rho and its measured energy E_i.
The model (`EnergyModel`) says

    t_i = overhead_s + rho_i F_j                     F_j: job j's full-cost epoch time
    E_i = host_w t_i + compute_w (t_i - overhead_s)  (J; the compute part lasts rho_i F_j)

Both are fitted by least squares, in that order: the time model over every job at once (one
shared overhead, one F per job: identifiable only from jobs that ran at two or more rhos),
then the two powers given the overhead. When the overhead is ~0 the two regressors of the
power fit are the same column: only the total ``host_w + compute_w`` is identifiable from
measurement, and it is split in the assumed model's proportion (which is all the planner
needs then: every term it computes scales with the total; `EnergyModel.fixed_kwh` is 0).

NB: on a machine without a power meter (no NVML, no RAPL) CodeCarbon's energy is its estimate
from the rated TDP, so a fit there recovers that estimate, not a measurement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from greentrainer_carbon.energy import J_PER_KWH, EnergyModel

MIN_EPOCHS = 3  # fewer measured epochs: the assumed model
MIN_DISTINCT_RHOS = 2  # rho must vary, or the fit cannot tell time that shrinks with rho
RHO_DECIMALS = 2
COLLINEAR = 1e-3  # relative overhead below which host and compute power are one column


@dataclass(frozen=True)
class MeasuredEpoch:
    """One recorded epoch: which job (epochs of a job share its full-cost time), its rho, its
    wall time and its measured energy."""

    job: str
    rho: float
    seconds: float
    kwh: float


def _overhead_s(epochs: Sequence[MeasuredEpoch], assumed: float) -> float:
    """The shared fixed seconds of an epoch; ``assumed`` when no job ran at two rhos."""
    jobs = sorted({e.job for e in epochs})
    varied = [j for j in jobs if len({round(e.rho, RHO_DECIMALS) for e in epochs if e.job == j}) > 1]
    if not varied:
        return assumed
    rows = [e for e in epochs if e.job in varied]
    # design: [1, rho if job == j for each varied job j] -> [overhead_s, F_j ...]
    design = np.zeros((len(rows), 1 + len(varied)))
    design[:, 0] = 1.0
    for i, epoch in enumerate(rows):
        design[i, 1 + varied.index(epoch.job)] = epoch.rho
    solution, *_ = np.linalg.lstsq(design, np.asarray([e.seconds for e in rows]), rcond=None)
    return max(0.0, float(solution[0]))


def fit_energy_model(epochs: Sequence[MeasuredEpoch], assumed: EnergyModel,
                     what: str = "") -> EnergyModel:
    """The model fitted from ``epochs`` (its ``source`` says from how many, and what was
    assumed), or ``assumed`` itself when fewer than `MIN_EPOCHS` usable epochs at
    `MIN_DISTINCT_RHOS` distinct rhos are recorded or the fit is not physical (a power < 0).
    ``resume_s`` is never fitted (a resume's loading is not recorded as an epoch)."""
    usable = [e for e in epochs if e.seconds > 0 and e.kwh > 0 and 0 < e.rho <= 1]
    if len(usable) < MIN_EPOCHS or \
            len({round(e.rho, RHO_DECIMALS) for e in usable}) < MIN_DISTINCT_RHOS:
        return assumed
    overhead = _overhead_s(usable, assumed.overhead_s)
    seconds = np.asarray([e.seconds for e in usable])
    compute = np.maximum(seconds - overhead, 0.0)
    joules = np.asarray([e.kwh for e in usable]) * J_PER_KWH
    suffix = f" {what}" if what else ""
    if overhead <= COLLINEAR * float(np.median(seconds)):
        total = float(joules @ seconds / (seconds @ seconds))
        share = assumed.host_w / (assumed.host_w + assumed.compute_w)
        return replace(assumed, host_w=total * share, compute_w=total * (1 - share),
                       overhead_s=overhead,
                       source=f"fitted from {len(usable)} epochs{suffix} (total power; its "
                              "host/compute split assumed)")
    (host, work), *_ = np.linalg.lstsq(np.column_stack((seconds, compute)), joules, rcond=None)
    if host < 0 or work < 0 or host + work <= 0:
        return assumed
    return replace(assumed, host_w=float(host), compute_w=float(work), overhead_s=overhead,
                   source=f"fitted from {len(usable)} epochs{suffix}")


__all__ = ["MIN_EPOCHS", "MeasuredEpoch", "fit_energy_model"]
