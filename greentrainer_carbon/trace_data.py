"""Recorded carbon-intensity traces on a regular 30-minute grid (numpy arrays).

A trace file is a CSV of a timestamp column and a gCO2/kWh column, with rows every 15, 30 or 60
minutes (the shipped GB file mixes 15- and 30-minute rows); each row covers the time to the next
one. Empty values and slots without a row stay NaN when parsed; `Trace.filled` fills them for a
simulation, which reports how many it filled.
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
    step_minutes: int = 30  # the rows' step in the file

    def filled(self) -> tuple[Trace, int]:
        """This trace with its missing slots filled (linearly between the neighbouring values,
        the nearest value at either end), and how many slots were filled."""
        values = np.asarray(self.values_g_per_kwh, dtype=float)
        gaps = np.isnan(values)
        if not gaps.any():
            return self, 0
        if gaps.all():
            raise TraceError(f"trace {self.name!r} has no value at all")
        index = np.arange(values.size)
        filled = np.interp(index, index[~gaps], values[~gaps])
        return Trace(self.name, self.start, filled, self.step_minutes), int(gaps.sum())

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


TIME_COLUMNS = ("time", "timestamp", "datetime", "date", "from", "start", "periodstart",
                "datetimeutc", "timeutc", "utc")
VALUE_HINTS = ("carbonintensity", "intensity", "gco2", "co2", "moer")
STEPS_MINUTES = (15, 30, 60)


def _normal(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def _columns(header: list[str], name: str) -> tuple[int, int]:
    """(time column, intensity column) of a header. Raises TraceError naming what it looks for."""
    names = [_normal(h) for h in header]
    time_col = next((i for i, n in enumerate(names) if n in TIME_COLUMNS), None)
    if time_col is None:
        time_col = next((i for i, n in enumerate(names) if "time" in n or "date" in n), None)
    value_col = next((i for hint in VALUE_HINTS for i, n in enumerate(names)
                      if hint in n and i != time_col), None)
    if value_col is None:
        value_col = next((i for i, n in enumerate(names) if n in ("value", "ci", "actual")
                          and i != time_col), None)
    if time_col is None or value_col is None:
        raise TraceError(
            f"trace {name!r}: the header {header!r} has no timestamp column (e.g. 'Time', "
            "'timestamp', 'datetime', 'from') or no gCO2/kWh column (e.g. 'Carbon Intensity', "
            "'carbon_intensity', 'gco2_per_kwh', 'value')")
    return time_col, value_col


def _moment(text: str) -> datetime:
    cleaned = text.strip()
    if cleaned.isdigit():  # Unix seconds
        return datetime.fromtimestamp(int(cleaned), UTC)
    moment = datetime.fromisoformat(cleaned.replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_trace_csv(text: str, name: str) -> Trace:
    """Parse a CSV of a timestamp column and a gCO2/kWh column (header names as
    `_columns` accepts; ISO-8601 or ``YYYY-MM-DD HH:MM[:SS]`` times, UTC unless they carry an
    offset; rows every 15, 30 or 60 minutes, or a mix). Each row's value covers the time to the
    next row (at most one step); slots are the time-weighted means, NaN where nothing covers
    them (empty values and missing rows are never invented here: `Trace.filled`). Raises
    TraceError naming the line or what is wrong."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        raise TraceError(f"trace {name!r} is empty: expected a header such as 'Time,Carbon Intensity'")
    time_col, value_col = _columns(header, name)
    stamps: list[float] = []
    values: list[float] = []
    for line_no, row in enumerate(reader, start=2):
        if not row or not any(cell.strip() for cell in row):
            continue
        try:
            moment = _moment(row[time_col])
            cell = row[value_col].strip() if len(row) > value_col else ""
            value = float(cell) if cell else float("nan")
        except (ValueError, IndexError, OverflowError) as exc:
            raise TraceError(f"trace {name!r} line {line_no}: {exc}") from exc
        if value < 0 or value == float("inf"):
            raise TraceError(f"trace {name!r} line {line_no}: intensity {value} is not >= 0")
        stamps.append(moment.timestamp())
        values.append(value)
    if len(stamps) < 2:
        raise TraceError(f"trace {name!r} has {len(stamps)} row(s); at least 2 are needed")
    order = np.argsort(stamps, kind="stable")
    seconds, raw = np.asarray(stamps)[order], np.asarray(values)[order]
    steps = np.diff(seconds)
    minutes = np.round(steps[steps > 0] / 60.0).astype(np.int64)
    step = float(np.bincount(minutes).argmax() * 60) if minutes.size else 0.0  # the usual step
    if not any(abs(step - m * 60) < 60 for m in STEPS_MINUTES):
        raise TraceError(f"trace {name!r}: rows are {step / 60:g} minutes apart; expected 15, 30 "
                         "or 60 minutes")
    covered = np.minimum(np.concatenate((steps, [step])), step)
    first = float(np.floor(seconds.min() / SLOT_S) * SLOT_S)
    n_slots = int(np.ceil((seconds.max() + step - first) / SLOT_S))
    sums, weights = np.zeros(n_slots), np.zeros(n_slots)
    for begin, length, value in zip(seconds - first, covered, raw):
        if np.isnan(value) or length <= 0:
            continue
        slot = int(begin // SLOT_S)
        end = begin + length
        while slot < n_slots and slot * SLOT_S < end:
            overlap = min(end, (slot + 1) * SLOT_S) - max(begin, slot * SLOT_S)
            sums[slot] += value * overlap
            weights[slot] += overlap
            slot += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        grid = np.where(weights > 0, sums / np.maximum(weights, 1e-9), np.nan)
    return Trace(name, datetime.fromtimestamp(first, UTC), grid, int(round(step / 60)))


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
