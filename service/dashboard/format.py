"""Numbers for people: FLOPs in T/P/EFLOPs, energy in Wh/kWh/MWh, CO2 in g/kg/t, percentages.

`unit_for` picks one unit for a whole chart axis (from its largest value) so that every tick
of an axis is written in the same unit.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

Scale = tuple[float, str]  # (divide by, unit)

FLOPS_UNITS: list[Scale] = [(1.0, "FLOPs"), (1e3, "kFLOPs"), (1e6, "MFLOPs"), (1e9, "GFLOPs"),
                            (1e12, "TFLOPs"), (1e15, "PFLOPs"), (1e18, "EFLOPs")]
ENERGY_UNITS: list[Scale] = [(1e-3, "Wh"), (1.0, "kWh"), (1e3, "MWh")]
CO2_UNITS: list[Scale] = [(1e-3, "g CO2"), (1.0, "kg CO2"), (1e3, "t CO2")]
KIND_UNITS = {"flops": FLOPS_UNITS, "kwh": ENERGY_UNITS, "kg_co2": CO2_UNITS}


def unit_for(kind: str, values: Iterable[float | None]) -> Scale:
    """The largest unit of ``kind`` in which the biggest |value| is at least 1."""
    units = KIND_UNITS[kind]
    biggest = max((abs(v) for v in values if v is not None), default=0.0)
    chosen = units[0]
    for scale in units:
        if biggest >= scale[0]:
            chosen = scale
    return chosen


def _number(value: float) -> str:
    magnitude = abs(value)
    if magnitude == 0:
        return "0"
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 0.01:
        return f"{value:.2f}"
    return f"{value:.2g}"


def human(kind: str, value: float | None) -> str:
    """``value`` (FLOPs, kWh or kg CO2) in the unit that suits it, e.g. '3.20 PFLOPs'."""
    if value is None:
        return "n/a"
    divide, unit = unit_for(kind, [value])
    return f"{_number(value / divide)} {unit}"


def flops(value: float | None) -> str:
    return human("flops", value)


def kwh(value: float | None) -> str:
    return human("kwh", value)


def co2(value: float | None) -> str:
    return human("kg_co2", value)


def percent(part: float | None, whole: float | None) -> str:
    """part / whole as a percentage, 'n/a' when whole is zero or unknown."""
    if part is None or not whole:
        return "n/a"
    return f"{100.0 * part / whole:.1f}%"


def intensity(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f} g/kWh"


def when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


FILTERS = {"flops": flops, "kwh": kwh, "co2": co2, "intensity": intensity, "when": when,
           "number": _number}


# The result's evaluation part (the rest are totals, shown above): the test set's ROUGE and the
# validation set's loss and ROUGE.
EVALUATION_KEYS = ("rouge", "validation")
_NOT_SCORES = (".n", ".best_epoch")  # counts and indices, not scores


def evaluation_metrics(result: dict[str, Any] | None) -> dict[str, float]:
    """The evaluation scores of a job's result, e.g. ``rouge.rouge1`` or ``validation.loss``
    (not row counts or epoch indices)."""
    scores = numeric_metrics({k: v for k, v in (result or {}).items() if k in EVALUATION_KEYS})
    return {name: value for name, value in scores.items() if not name.endswith(_NOT_SCORES)}


def numeric_metrics(result: dict[str, Any] | None, prefix: str = "") -> dict[str, float]:
    """The numbers of a job's result (e.g. ROUGE), nested keys joined with '.'."""
    found: dict[str, float] = {}
    for key, value in (result or {}).items():
        if isinstance(value, dict):
            found.update(numeric_metrics(value, f"{prefix}{key}."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            found[f"{prefix}{key}"] = float(value)
    return found
