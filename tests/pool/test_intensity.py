"""The shared intensity history and the measured throughput, on SQLite and Postgres: readings
counted once per slot, averaged, pruned; every live region recorded by a scheduler pass; the
planner's forecast reads what was recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from greentrainer_carbon.config import CarbonSettings
from greentrainer_carbon.errors import ProviderError
from greentrainer_carbon.forecaster import Forecaster, SourceAnswer
from greentrainer_carbon.history import slot_of
from greentrainer_carbon.readings import CarbonReading
from service.db import session_scope
from service.models import IntensitySlot
from service.pool.carbon_plan import CarbonPlanning
from service.pool.intensity import (
    DbHistory,
    estimated_full_epoch_s,
    prune,
    record_intensities,
    record_readings,
    record_throughput,
)
from service.settings import Settings
from tests.pool.test_dispatch import factory, job, postgres, team  # noqa: F401

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def reading(value: float, at: datetime, forecast: bool = False) -> CarbonReading:
    return CarbonReading(value, at, "gb-carbon-intensity", is_forecast=forecast)


def test_a_reading_counts_once_and_a_slot_is_the_mean_of_distinct_readings(
        factory: sessionmaker[Session]) -> None:
    first = reading(100.0, T0 + timedelta(minutes=5))
    with session_scope(factory) as session:
        assert record_readings(session, "GB", [first, first]) == 1  # the chain's cached answer
        assert record_readings(session, "GB", [reading(200.0, T0 + timedelta(minutes=20))]) == 1
        assert record_readings(session, "GB", [reading(50.0, T0 + timedelta(hours=1),
                                                       forecast=True)]) == 0
        assert record_readings(session, "FR", [reading(30.0, T0 + timedelta(minutes=40))]) == 1
    grid = DbHistory(factory).grid("GB", slot_of(T0) - 1, 4)
    assert np.isnan(grid[0]) and grid[1] == 150.0 and np.isnan(grid[2]) and np.isnan(grid[3])
    assert DbHistory(factory).grid("FR", slot_of(T0) + 1, 1)[0] == 30.0


def test_old_slots_are_pruned(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as session:
        record_readings(session, "GB", [reading(100.0, T0 - timedelta(days=40)),
                                        reading(120.0, T0 - timedelta(days=2))])
    with session_scope(factory) as session:
        assert prune(session, keep_days=35, now=T0) == 1
        assert session.scalar(select(func.count()).select_from(IntensitySlot)) == 1


def test_a_scheduler_pass_records_every_live_region_and_survives_a_failing_one(
        factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as session:
        owner = team(session)
        job(session, owner, region="FR")
        job(session, owner, region="DE")
        job(session, owner, region="US", status="succeeded")
    values = {None: 200.0, "FR": 40.0}

    def current(region: str | None) -> CarbonReading:
        if region not in values:
            raise ProviderError("static", f"no data for {region}")
        return reading(values[region], datetime.now(UTC))

    assert record_intensities(factory, current, "GB", keep_days=35) == 2
    now = slot_of(datetime.now(UTC))
    assert DbHistory(factory).grid("GB", now, 1)[0] == 200.0
    assert DbHistory(factory).grid("FR", now, 1)[0] == 40.0
    assert np.isnan(DbHistory(factory).grid("US", now, 1)[0])  # a finished job's region


def test_the_forecast_reads_the_recorded_history(factory: sessionmaker[Session]) -> None:
    now = datetime.now(UTC)
    past = [reading(100.0 if (s // 24) % 2 else 300.0, now - timedelta(minutes=30 * s))
            for s in range(1, 3 * 48)]
    with session_scope(factory) as session:
        record_readings(session, "GB", past)

    class NoForecast:
        def ask(self, first_slot: int, n_slots: int) -> SourceAnswer:
            return SourceAnswer(reading(200.0, now), np.full(n_slots, np.nan), 250.0)

    forecast = Forecaster(NoForecast(), DbHistory(factory), "GB").forecast(now, 48)
    assert forecast.source_hours() == {"live": 0.5, "history": 23.5} and forecast.notes == ()
    assert np.ptp(forecast.g_per_kwh) > 50


def test_throughput_is_a_moving_average_per_class_and_model(
        factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as session:
        assert estimated_full_epoch_s(session, "a100", "m", 100, 1800.0) == 1800.0
        record_throughput(session, "a100", "m", 2.0)
    with session_scope(factory) as session:
        record_throughput(session, "a100", "m", 4.0)
    with session_scope(factory) as session:
        assert estimated_full_epoch_s(session, "a100", "m", 100, 1800.0) == pytest.approx(260.0)
        assert estimated_full_epoch_s(session, "h100", "m", 100, 1800.0) == pytest.approx(260.0)
        assert estimated_full_epoch_s(session, "a100", "other", 100, 1800.0) == 1800.0


def test_a_jobs_region_picks_its_countrys_static_average_and_fallbacks_are_reported(
        factory: sessionmaker[Session]) -> None:
    carbon = CarbonSettings(providers="gb,static", gb_api_base_url="http://127.0.0.1:9",
                            http_max_retries=0, http_timeout_s=1.0)
    planning = CarbonPlanning(Settings(database_url="sqlite://", carbon=carbon), factory)
    policy = {"type": "fixed", "rho": 0.6}
    try:
        france = planning.planner(1, policy, "FR", 60.0).decide(datetime.now(UTC), [])
        britain = planning.planner(1, policy, "GB", 60.0)
        decision = britain.decide(datetime.now(UTC), [])
        fallbacks = planning.fallbacks(britain)
    finally:
        planning.close()
    assert france.reading.source.endswith("FRA") and decision.reading.source.endswith("GBR")
    assert france.reading.carbon_intensity_g_per_kwh < decision.reading.carbon_intensity_g_per_kwh
    assert fallbacks and fallbacks[0].used == "codecarbon-static:GBR"
    assert "gb-carbon-intensity" in fallbacks[0].message
