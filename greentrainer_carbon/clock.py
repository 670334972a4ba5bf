"""The clock every carbon decision reads: the real UTC clock, or (tests only) an accelerated one.

Production's carbon decisions (the worker at each epoch boundary, the scheduler's green windows
and carbon resumes, the API's budget check) and the providers' replay of a trace ask one
`Clock` built from ``GREENTRAINER_CARBON__CLOCK``, so that an end-to-end test can run hours of
a recorded grid in seconds and compare every decision with the simulator's
(tests/e2e/test_carbon_equality.py). Leases, heartbeats and timestamps of rows keep the real
clock: they measure the machines, not the grid.

    real                                     the UTC clock (the default)
    accelerated:<start ISO 8601>:<factor>    the real clock until <start>, then <factor> times
                                             as fast: start + (real - start) x factor

Every process given the same string reads the same time (the start is an absolute moment), and
an accelerated clock never runs behind the real one after its start, so deadlines the API checks
against the real clock stay in the clock's future.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from greentrainer_carbon.readings import parse_utc

Clock = Callable[[], datetime]
ACCELERATED = "accelerated:"


def utc_now() -> datetime:
    """The real UTC clock."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class AcceleratedClock:
    """The real clock from ``start`` on, ``factor`` times as fast (module docstring)."""

    start: datetime
    factor: float

    def __post_init__(self) -> None:
        if not self.factor >= 1:
            raise ValueError(f"an accelerated clock's factor must be >= 1, got {self.factor}")

    def __call__(self) -> datetime:
        now = utc_now()
        return now if now <= self.start else self.start + (now - self.start) * self.factor


def parse_clock(spec: str) -> Clock:
    """The clock ``spec`` names ("real" or "accelerated:<start ISO>:<factor>"). Raises
    ValueError naming what is wrong (a setting's validation error)."""
    if spec == "real":
        return utc_now
    if not spec.startswith(ACCELERATED) or spec.count(":") < 2:
        raise ValueError(f"clock {spec!r}: use 'real' or 'accelerated:<start ISO>:<factor>'")
    start, _, factor = spec.removeprefix(ACCELERATED).rpartition(":")
    try:
        speed = float(factor)
    except ValueError:
        raise ValueError(f"clock {spec!r}: the factor {factor!r} is not a number") from None
    return AcceleratedClock(parse_utc(start, "clock start"), speed)


__all__ = ["AcceleratedClock", "Clock", "parse_clock", "utc_now"]
