"""Energy and CO2 of one epoch, measured by CodeCarbon in offline mode (no network call).

Each epoch gets its own `OfflineEmissionsTracker`, started at the epoch's first rho decision and
stopped at its end, for the worker's GPUs (`gpu_ids`), its CPU and RAM. The tracker is given the
carbon intensity the scheduler used for that epoch (`force_carbon_intensity_g_co2e_kwh`), so the
CO2 it reports is kWh x that intensity: energy and CO2 agree with the plan. Our own output
handler (`EpochOutput`) receives CodeCarbon's `EmissionsData` and is the seam into the database.

Where CodeCarbon has no power sensor (no RAPL for the CPU, no NVML GPU) it estimates from TDP
constants; such epochs are marked ``energy_is_estimate``. Measuring never crashes a job: a
CodeCarbon failure is logged and the epoch is recorded without energy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from codecarbon.output_methods.base_output import BaseOutput

log = logging.getLogger("worker.energy")

MEASURED_CPU_MODES = frozenset({"intel_rapl", "intel_power_gadget", "windows_emi"})


@dataclass(frozen=True)
class EpochEnergy:
    energy_kwh: float
    kg_co2: float
    cpu_kwh: float
    gpu_kwh: float
    ram_kwh: float
    is_estimate: bool


class EpochOutput(BaseOutput):
    """A CodeCarbon output handler that keeps the last `EmissionsData` of its tracker."""

    def __init__(self) -> None:
        self.data: Any = None

    def out(self, total: Any, delta: Any) -> None:
        self.data = total

    def live_out(self, total: Any, delta: Any) -> None:
        self.data = total


def _is_estimate(tracker: Any) -> bool:
    """True unless the CPU is read from a power sensor and, when GPUs are tracked, NVML."""
    from codecarbon.external.hardware import CPU, GPU

    hardware = list(getattr(tracker, "_hardware", []))
    cpu_measured = any(isinstance(h, CPU) and getattr(h, "_mode", "") in MEASURED_CPU_MODES
                       for h in hardware)
    gpu_unmeasured = bool(getattr(tracker, "_gpu_ids", None)) and \
        not any(isinstance(h, GPU) for h in hardware)
    return not cpu_measured or gpu_unmeasured


class EnergyMeter:
    """Measures one epoch at a time: `start(intensity)` ... `stop()` -> EpochEnergy or None."""

    def __init__(self, *, gpu_ids: list[int] | None, country_iso3: str = "GBR") -> None:
        self.gpu_ids = gpu_ids
        self.country_iso3 = country_iso3
        self._tracker: Any = None
        self._output: EpochOutput | None = None

    def start(self, carbon_intensity_g_per_kwh: float | None) -> None:
        """Begin measuring; a failure is logged and the epoch goes unmeasured."""
        from codecarbon import OfflineEmissionsTracker

        self._tracker, self._output = None, EpochOutput()
        options: dict[str, Any] = {}
        if carbon_intensity_g_per_kwh is not None:
            options["force_carbon_intensity_g_co2e_kwh"] = float(carbon_intensity_g_per_kwh)
        try:
            tracker = OfflineEmissionsTracker(
                country_iso_code=self.country_iso3, gpu_ids=self.gpu_ids, save_to_file=False,
                output_handlers=[self._output], measure_power_secs=5, log_level="error",
                allow_multiple_runs=True, tracking_mode="process", **options)
            tracker.start()
        except Exception:  # measurement must never crash the job it measures
            log.warning("CodeCarbon could not start; this epoch has no energy figure",
                        exc_info=True)
            return
        self._tracker = tracker

    def stop(self) -> EpochEnergy | None:
        tracker, output = self._tracker, self._output
        self._tracker = None
        if tracker is None or output is None:
            return None
        try:
            tracker.stop()
            data = output.data
            if data is None:
                return None
            return EpochEnergy(energy_kwh=float(data.energy_consumed), kg_co2=float(data.emissions),
                               cpu_kwh=float(data.cpu_energy), gpu_kwh=float(data.gpu_energy),
                               ram_kwh=float(data.ram_energy), is_estimate=_is_estimate(tracker))
        except Exception:  # measurement must never crash the job it measures
            log.warning("CodeCarbon failed to stop; this epoch has no energy figure",
                        exc_info=True)
            return None
