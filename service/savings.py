"""CO2 saved by a job: the one place that defines "saved by fewer FLOPs" and "saved by running
at cleaner times". The API (`/stats/overview`, `/jobs/{id}/series`) and the dashboard both call
these functions, so every saving shown anywhere is computed here.

For each recorded epoch k of a job:

    E_k    energy measured (kWh)              F_k   FLOPs executed
    c_k    carbon intensity used (g/kWh)      F*_k  FLOPs of full fine-tuning (counterfactual)
    m_k    CO2 emitted (kg, as recorded; E_k c_k / 1000 when only energy and intensity exist)
    c_ref  the reference intensity: the grid's intensity when the job was submitted

    E*_k = E_k F*_k / F_k          full fine-tuning energy on the same hardware
                                   (greentrainer_carbon.energy: the one counterfactual; an
                                   upper bound, since fixed power does not shrink with rho)
    C_used_k = E*_k c_k / 1000     counterfactual CO2 at the intensities actually used (kg)
    C_ref_k  = E*_k c_ref / 1000   counterfactual CO2 had it run when submitted (kg)

    saved_by_fewer_flops_k  = C_used_k - m_k
    saved_by_cleaner_time_k = C_ref_k - C_used_k      (negative when it ran at dirtier times)
    saved_k                 = C_ref_k - m_k           (the sum of the two)

An epoch without energy, or without an intensity (and no c_ref), contributes FLOPs but no CO2
figures: nothing is invented. ``c_ref`` comes from the job's `carbon_at_submission` event
(data ``carbon_intensity_g_per_kwh``), written by whoever submits or plans the job; when that
event is missing the first epoch's intensity is used, so the cleaner-times saving then counts
only the within-run rho adaptation, never the delay of the start (a conservative figure).
`record_submission_intensity` writes that event (the dispatcher or the worker calls it once,
with the reading the scheduler had when the job was accepted).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.orm import Session

from greentrainer_carbon.energy import full_ft_energy_kwh
from service.job_events import append_event

G_PER_KG = 1000.0
SUBMISSION_EVENT = "carbon_at_submission"


class EpochFigures(Protocol):
    """What the saving formulas read of one epoch: a `job_epochs` row (`service.models.JobEpoch`)
    is one (units in the names)."""

    @property
    def executed_flops(self) -> float: ...
    @property
    def full_ft_flops(self) -> float: ...
    @property
    def energy_kwh(self) -> float | None: ...
    @property
    def carbon_intensity_g_per_kwh(self) -> float | None: ...
    @property
    def kg_co2(self) -> float | None: ...


@dataclass(frozen=True)
class Savings:
    """Per-epoch (or summed) CO2 figures in kg; see the module docstring for the formulas."""

    emitted_kg: float = 0.0
    counterfactual_used_kg: float = 0.0
    counterfactual_ref_kg: float = 0.0
    saved_by_fewer_flops_kg: float = 0.0
    saved_by_cleaner_time_kg: float = 0.0
    full_ft_energy_kwh: float = 0.0

    @property
    def saved_kg(self) -> float:
        return self.saved_by_fewer_flops_kg + self.saved_by_cleaner_time_kg

    def __add__(self, other: Savings) -> Savings:
        return Savings(*(a + b for a, b in zip(self._values(), other._values(), strict=True)))

    def _values(self) -> tuple[float, ...]:
        return (self.emitted_kg, self.counterfactual_used_kg, self.counterfactual_ref_kg,
                self.saved_by_fewer_flops_kg, self.saved_by_cleaner_time_kg,
                self.full_ft_energy_kwh)


def full_ft_energy_of(epoch: EpochFigures) -> float | None:
    """E*_k of a recorded epoch (greentrainer_carbon.energy.full_ft_energy_kwh)."""
    return full_ft_energy_kwh(epoch.energy_kwh, epoch.executed_flops, epoch.full_ft_flops)


def emitted_kg(epoch: EpochFigures) -> float | None:
    """m_k as recorded, else E_k c_k / 1000, else None."""
    if epoch.kg_co2 is not None:
        return epoch.kg_co2
    if epoch.energy_kwh is None or epoch.carbon_intensity_g_per_kwh is None:
        return None
    return epoch.energy_kwh * epoch.carbon_intensity_g_per_kwh / G_PER_KG


def epoch_savings(epoch: EpochFigures, reference_g_per_kwh: float | None) -> Savings:
    """The saving figures of one epoch (all zero when energy or intensity is missing)."""
    energy_full = full_ft_energy_of(epoch)
    emitted = emitted_kg(epoch)
    intensity = epoch.carbon_intensity_g_per_kwh
    if energy_full is None or emitted is None or intensity is None:
        return Savings(emitted_kg=emitted or 0.0, full_ft_energy_kwh=energy_full or 0.0)
    reference = intensity if reference_g_per_kwh is None else reference_g_per_kwh
    used = energy_full * intensity / G_PER_KG
    ref = energy_full * reference / G_PER_KG
    return Savings(emitted_kg=emitted, counterfactual_used_kg=used, counterfactual_ref_kg=ref,
                   saved_by_fewer_flops_kg=used - emitted, saved_by_cleaner_time_kg=ref - used,
                   full_ft_energy_kwh=energy_full)


def reference_intensity(submitted_g_per_kwh: float | None,
                        epochs: Iterable[EpochFigures]) -> float | None:
    """c_ref: the intensity at submission, else the first epoch's intensity, else None."""
    if submitted_g_per_kwh is not None:
        return submitted_g_per_kwh
    for epoch in epochs:
        if epoch.carbon_intensity_g_per_kwh is not None:
            return epoch.carbon_intensity_g_per_kwh
    return None


def record_submission_intensity(session: Session, job_id: str, carbon_intensity_g_per_kwh: float,
                                source: str) -> None:
    """Store c_ref for ``job_id`` as a `carbon_at_submission` event in the caller's transaction
    (the latest such event wins if it is written again)."""
    append_event(session, job_id, SUBMISSION_EVENT,
                 f"grid intensity at submission: {carbon_intensity_g_per_kwh:.0f} g/kWh "
                 f"({source})", data={"carbon_intensity_g_per_kwh": carbon_intensity_g_per_kwh,
                                      "source": source})
