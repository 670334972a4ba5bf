"""The history forecast: the live anomaly fades into the daily profile, and weekdays and weekends
have profiles of their own (forecast.py), in the function and through production's Forecaster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from greentrainer_carbon.forecast import (
    DEFAULT_TAU_HOURS,
    daily_profile_forecast,
    forecast_from_history,
    is_weekend,
)
from greentrainer_carbon.forecaster import HISTORY, Forecaster, SourceAnswer
from greentrainer_carbon.history import MemoryHistory, slot_of, slot_start
from greentrainer_carbon.readings import CarbonReading

SHAPE = 200.0 + 100.0 * np.sin(2 * np.pi * np.arange(48) / 48)
FRIDAY_LATE = datetime(2030, 5, 31, 23, 30, tzinfo=UTC)  # a Friday's last slot
SATURDAY = datetime(2030, 6, 1, 10, 0, tzinfo=UTC)


def weekday_300_weekend_100(last_slot: int, n_slots: int) -> np.ndarray:
    slots = np.arange(last_slot - n_slots + 1, last_slot + 1)
    return np.where(is_weekend(slots), 100.0, 300.0)


def test_the_weekend_is_saturday_and_sunday_in_utc() -> None:
    days = [slot_of(FRIDAY_LATE) + 48 * d for d in range(4)]  # Fri, Sat, Sun, Mon
    assert list(is_weekend(np.array(days))) == [False, True, True, False]


def test_a_persistent_offset_is_tracked_and_decays_to_the_daily_profile() -> None:
    values = np.tile(SHAPE, 30)
    values[-1] += 60.0  # the live reading is 60 g/kWh above its half-hour's profile
    horizon = 200
    forecast = daily_profile_forecast(values, np.array([values.size - 1]), horizon)[0]
    h = np.arange(1, horizon)
    profile = SHAPE[(values.size - 1 + h) % 48]
    expected = profile + 60.0 * np.exp(-h * 0.5 / DEFAULT_TAU_HOURS)
    assert forecast[0] == values[-1]
    other = h % 48 != 0  # a whole day ahead the profile also reads the live slot itself
    assert np.allclose(forecast[1:][other], expected[other])
    assert forecast[1] - profile[0] > 55.0  # next half-hour: still the offset
    assert abs(forecast[-1] - profile[-1]) < 0.15 * 60.0  # four days on: near the profile


def test_weekends_are_forecast_from_past_weekends_only() -> None:
    live = slot_of(FRIDAY_LATE)
    history = weekday_300_weekend_100(live, 35 * 48)
    by_day_type = forecast_from_history(history, 49, live_slot=live)
    assert by_day_type[0] == 300.0
    assert np.allclose(by_day_type[1:], 100.0)  # Saturday: the past weekends' level
    every_day = forecast_from_history(history, 49)
    assert np.all(every_day[1:] > 200.0)  # without the day type, weekdays swamp Saturday


class LiveOnly:
    """A source whose provider gives the live reading and no forecast."""

    def __init__(self, value: float) -> None:
        self.value = value

    def ask(self, first_slot: int, n_slots: int) -> SourceAnswer:
        live = CarbonReading(self.value, slot_start(first_slot), "live-only")
        return SourceAnswer(live, np.full(n_slots, np.nan), None)


def test_production_forecaster_reads_four_weeks_and_forecasts_the_weekend_apart() -> None:
    now = slot_of(SATURDAY)
    values = weekday_300_weekend_100(now - 1, 35 * 48)
    history = MemoryHistory()
    history.record("XX", [CarbonReading(float(v), slot_start(now - values.size + i), "t")
                          for i, v in enumerate(values)])
    forecast = Forecaster(LiveOnly(100.0), history, "XX").forecast(SATURDAY, 96)
    monday = slot_of(SATURDAY + timedelta(hours=38)) - now  # Monday 00:00 UTC
    assert np.all(forecast.sources[1:] == HISTORY)
    assert np.allclose(forecast.g_per_kwh[1:monday], 100.0)
    assert np.allclose(forecast.g_per_kwh[monday:], 300.0)
    assert forecast.past_g_per_kwh.size == 7 * 48  # the rho reference stays the past week
