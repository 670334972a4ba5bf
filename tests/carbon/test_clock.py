"""The carbon clock: the real one by default, an accelerated one for end-to-end tests (read by
the provider chain the settings build), and the trace replayed at the clock's time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from greentrainer_carbon.clock import AcceleratedClock, parse_clock, utc_now
from greentrainer_carbon.config import CarbonSettings, build_chain
from greentrainer_carbon.history import SLOT
from greentrainer_carbon.trace_data import load_trace


def test_the_default_clock_is_the_real_one() -> None:
    assert parse_clock("real") is utc_now
    assert CarbonSettings().now is utc_now


def test_an_accelerated_clock_is_real_until_its_start_then_runs_factor_times_as_fast() -> None:
    start = datetime.now(UTC) + timedelta(seconds=0.2)
    clock = parse_clock(f"accelerated:{start.isoformat()}:600")
    assert clock == AcceleratedClock(start, 600.0)
    assert abs((clock() - datetime.now(UTC)).total_seconds()) < 0.05  # not started yet
    past = AcceleratedClock(datetime.now(UTC) - timedelta(seconds=2), 600.0)
    ahead = (past() - past.start).total_seconds()
    assert 1150 < ahead < 1300  # ~2 real seconds x 600


@pytest.mark.parametrize("spec", ["fast", "accelerated:2020-01-01T00:00Z", "accelerated:x:10",
                                  "accelerated:2020-01-01T00:00Z:ten",
                                  "accelerated:2020-01-01T00:00Z:0.5"])
def test_a_bad_clock_setting_is_refused_naming_it(spec: str) -> None:
    with pytest.raises(ValidationError, match="clock|factor"):
        CarbonSettings(clock=spec)


def test_the_chain_replays_the_trace_at_the_settings_clock_and_anchor() -> None:
    trace = load_trace("gb-2020")
    anchor = datetime(2026, 1, 1, tzinfo=UTC)  # replays 2019-12-20 00:00 (the trace's start)
    start = datetime.now(UTC) - timedelta(seconds=1)
    settings = CarbonSettings(providers="trace", trace="gb-2020", trace_anchor=anchor,
                              clock=f"accelerated:{start.isoformat()}:1", cache_ttl_s=0)
    chain = build_chain(settings)
    reading = chain.latest().value
    now = settings.now()
    index = int((now - anchor) / SLOT) % trace.n_slots
    assert reading.carbon_intensity_g_per_kwh == float(trace.values_g_per_kwh[index])
    assert abs((reading.timestamp - now).total_seconds()) < 1
