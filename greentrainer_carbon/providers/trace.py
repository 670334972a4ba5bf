"""Replay of a recorded trace as if it were live (demos, offline development, simulation)."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from greentrainer_carbon.errors import ProviderDataMissing, TraceError
from greentrainer_carbon.providers.base import CarbonProvider, Clock, utc_now
from greentrainer_carbon.readings import CarbonReading, capped_hours
from greentrainer_carbon.trace_data import SLOT, Trace


class TraceReplayProvider(CarbonProvider):
    """Answers with the trace's value for the slot containing the (mapped) current time.

    `anchor=None`: the clock's time is looked up directly (it must lie inside the trace).
    `anchor=t0`: time t maps to trace.start + ((t - t0) mod trace length), so a 2020 trace
    can be replayed today in a loop. `forecast` is the recorded future: a perfect forecast.
    """

    def __init__(
        self, trace: Trace, clock: Clock = utc_now, anchor: datetime | None = None
    ) -> None:
        self.trace = trace
        self.clock = clock
        self.anchor = anchor
        self.name = f"trace:{trace.name}"

    def __repr__(self) -> str:
        return f"TraceReplayProvider(trace={self.trace.name!r}, anchor={self.anchor!r})"

    def _trace_time(self, moment: datetime) -> datetime:
        if self.anchor is None:
            return moment
        span = self.trace.n_slots * SLOT
        return self.trace.start + (moment - self.anchor) % span

    def _value(self, index: int) -> float:
        return float(self.trace.values_g_per_kwh[index % self.trace.n_slots])

    def latest(self) -> CarbonReading:
        now = self.clock()
        try:
            index = self.trace.slot_index(self._trace_time(now))
        except TraceError as exc:
            raise ProviderDataMissing(self.name, str(exc)) from exc
        value = self._value(index)
        if np.isnan(value):
            raise ProviderDataMissing(self.name, f"no recorded value at {now.isoformat()}")
        return CarbonReading(value, now, self.name, "average", False)

    def forecast(self, hours: float = 24.0) -> list[CarbonReading]:
        now, hours = self.clock(), capped_hours(hours)
        try:
            index = self.trace.slot_index(self._trace_time(now))
        except TraceError as exc:
            raise ProviderDataMissing(self.name, str(exc)) from exc
        readings = []
        for step in range(int(hours * 2)):
            if self.anchor is None and index + step >= self.trace.n_slots:
                break
            value = self._value(index + step)
            if not np.isnan(value):
                readings.append(
                    CarbonReading(
                        value, now + step * timedelta(minutes=30), self.name, "average", True
                    )
                )
        return readings
