"""A region's recorded carbon intensity: the past every forecast and every rho decision reads.

Time is cut into 30-minute slots aligned to the UTC clock (``slot_of``: :00 and :30). A history
answers the mean recorded intensity of each slot of a span, NaN where nothing was recorded:
missing is never invented.

- `MemoryHistory`: readings kept in the process (tests, a one-off `greentrainer scheduler`).
- `TraceHistory`: a recorded trace seen through a clock, so that only the past is visible
  (the simulator's history: the same forecaster code reads it as production reads the database).
- The service's database-backed history (`service/pool/intensity.py`) records every provider
  reading the scheduler sees, per region, and is what production's forecasts read.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from greentrainer_carbon.readings import CarbonReading, ensure_utc
from greentrainer_carbon.trace_data import Trace

SLOT_S = 1800
SLOT = timedelta(seconds=SLOT_S)
FloatArray = NDArray[np.float64]


def slot_of(moment: datetime) -> int:
    """The index of the 30-minute UTC slot containing ``moment`` (slots since the Unix epoch)."""
    return int(ensure_utc(moment).timestamp() // SLOT_S)


def slot_start(slot: int) -> datetime:
    """The start of slot ``slot``."""
    return datetime.fromtimestamp(slot * SLOT_S, UTC)


class IntensityHistory(Protocol):
    """Recorded intensity of a region, by 30-minute slot."""

    def grid(self, region: str, first_slot: int, n_slots: int) -> FloatArray:
        """[n_slots] mean recorded g/kWh of slots first_slot..first_slot+n-1, NaN where none."""
        ...


class MemoryHistory:
    """Readings recorded in this process, averaged per slot."""

    def __init__(self) -> None:
        self._sums: dict[str, dict[int, list[float]]] = defaultdict(dict)

    def record(self, region: str, readings: Iterable[CarbonReading]) -> int:
        """Add observed (not forecast) readings; returns how many were kept."""
        kept = 0
        for reading in readings:
            if reading.is_forecast:
                continue
            total = self._sums[region].setdefault(slot_of(reading.timestamp), [0.0, 0.0])
            total[0] += reading.carbon_intensity_g_per_kwh
            total[1] += 1
            kept += 1
        return kept

    def grid(self, region: str, first_slot: int, n_slots: int) -> FloatArray:
        by_slot = self._sums.get(region, {})
        out = np.full(n_slots, np.nan)
        for slot, (total, count) in by_slot.items():
            if first_slot <= slot < first_slot + n_slots and count:
                out[slot - first_slot] = total / count
        return out


class TraceHistory:
    """A trace as a region's history: slots before the clock's slot, and that slot itself (its
    value is the live reading), are visible; later slots are NaN."""

    def __init__(self, trace: Trace, clock: Callable[[], datetime]) -> None:
        self.trace = trace
        self.clock = clock
        self.first_slot = slot_of(trace.start)
        self.values = np.asarray(trace.values_g_per_kwh, dtype=float)

    def grid(self, region: str, first_slot: int, n_slots: int) -> FloatArray:
        visible_until = slot_of(self.clock())  # inclusive
        out = np.full(n_slots, np.nan)
        lo = max(first_slot, self.first_slot)
        hi = min(first_slot + n_slots, self.first_slot + self.values.size, visible_until + 1)
        if hi > lo:
            out[lo - first_slot:hi - first_slot] = self.values[lo - self.first_slot:hi - self.first_slot]
        return out
