"""Recorded carbon-intensity traces on a regular 30-minute grid (numpy arrays).

Rows are averaged into the 30-minute slot that contains them (the GB file mixes 15- and
30-minute rows). Empty values and slots without a row stay NaN: missing is never invented.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import numpy as np

from greentrainer_carbon.errors import TraceError
from greentrainer_carbon.readings import ensure_utc

SLOT_S = 1800
SLOT = timedelta(seconds=SLOT_S)
SHIPPED_TRACES = {"gb-2020": "gb_2020_ci.csv", "fr-2020": "fr_2020_ci.csv"}


@dataclass(frozen=True)
class Trace:
    """`values_g_per_kwh[i]` is the mean intensity over [start + i*30 min, start + (i+1)*30 min)."""

    name: str
    start: datetime
    values_g_per_kwh: np.ndarray  # [n_slots] float64, NaN = missing

    @property
    def n_slots(self) -> int:
        return int(self.values_g_per_kwh.shape[0])

    @property
    def end(self) -> datetime:
        return self.start + self.n_slots * SLOT

    def slot_index(self, moment: datetime) -> int:
        """Index of the slot containing `moment`; TraceError outside the trace."""
        offset = (ensure_utc(moment) - self.start).total_seconds()
        index = int(offset // SLOT_S)
        if not 0 <= index < self.n_slots:
            raise TraceError(
                f"trace {self.name!r} covers {self.start.isoformat()} to "
                f"{self.end.isoformat()}, not {moment.isoformat()}"
            )
        return index

    def slot_time(self, index: int) -> datetime:
        return self.start + index * SLOT

    @property
    def missing_fraction(self) -> float:
        return float(np.isnan(self.values_g_per_kwh).mean())


def parse_trace_csv(text: str, name: str) -> Trace:
    """Parse `Time,Carbon Intensity` CSV text (UTC `YYYY-MM-DD HH:MM:SS`). Raises TraceError."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or [h.strip() for h in header[:2]] != ["Time", "Carbon Intensity"]:
        raise TraceError(f"trace {name!r}: header must be 'Time,Carbon Intensity', got {header!r}")
    stamps: list[float] = []
    values: list[float] = []
    for line_no, row in enumerate(reader, start=2):
        if not row:
            continue
        try:
            moment = datetime.strptime(row[0].strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
            value = float(row[1]) if len(row) > 1 and row[1].strip() else float("nan")
        except ValueError as exc:
            raise TraceError(f"trace {name!r} line {line_no}: {exc}") from exc
        if value < 0:
            raise TraceError(f"trace {name!r} line {line_no}: negative intensity {value}")
        stamps.append(moment.timestamp())
        values.append(value)
    if not stamps:
        raise TraceError(f"trace {name!r} has no rows")
    seconds = np.asarray(stamps)
    first = float(np.floor(seconds.min() / SLOT_S) * SLOT_S)
    slots = ((seconds - first) // SLOT_S).astype(np.int64)
    n_slots = int(slots.max()) + 1
    raw = np.asarray(values)
    ok = ~np.isnan(raw)
    sums = np.bincount(slots[ok], weights=raw[ok], minlength=n_slots)
    counts = np.bincount(slots[ok], minlength=n_slots)
    with np.errstate(invalid="ignore", divide="ignore"):
        grid = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return Trace(name, datetime.fromtimestamp(first, UTC), grid)


def load_trace(name_or_path: str) -> Trace:
    """A shipped trace by name (gb-2020, fr-2020; via importlib.resources) or a CSV path."""
    if name_or_path in SHIPPED_TRACES:
        resource = resources.files("greentrainer_carbon.traces") / SHIPPED_TRACES[name_or_path]
        return parse_trace_csv(resource.read_text(encoding="utf-8"), name_or_path)
    path = Path(name_or_path)
    if not path.is_file():
        known = ", ".join(sorted(SHIPPED_TRACES))
        raise TraceError(
            f"trace {name_or_path!r} is neither a shipped trace ({known}) nor a CSV file"
        )
    return parse_trace_csv(path.read_text(encoding="utf-8"), path.stem)
