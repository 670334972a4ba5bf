"""Fallback chain and TTL cache; offline providers (CodeCarbon static, trace replay); settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from greentrainer_carbon.errors import AllProvidersFailed, ProviderDataMissing, TraceError
from greentrainer_carbon.providers import (
    CachedProvider,
    ElectricityMapsProvider,
    GBCarbonIntensityProvider,
    ProviderChain,
    StaticCountryProvider,
    TraceReplayProvider,
)
from greentrainer_carbon.retrying_http import RetryingHTTP
from greentrainer_carbon.trace_data import load_trace, parse_trace_csv

from .conftest import Answer


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_chain_falls_back_and_reports_which_provider_failed_and_which_was_used(fake_server, sleeps):
    fake_server.add("/intensity", Answer(503, {"error": {"code": "503", "message": "maintenance"}}))
    gb = GBCarbonIntensityProvider(
        RetryingHTTP("gb", fake_server.url, max_retries=1, sleep=sleeps.append)
    )
    chain = ProviderChain([gb, StaticCountryProvider("FRA")])
    result = chain.latest()
    assert result.used == "codecarbon-static:FRA" and result.value.source == "codecarbon-static:FRA"
    assert result.event is not None and [f.provider for f in result.event.failed] == [
        "gb-carbon-intensity"
    ]
    assert (
        "provider gb-carbon-intensity failed" in result.event.message
        and "used codecarbon-static:FRA" in result.event.message
    )
    assert result.event.to_dict()["used"] == "codecarbon-static:FRA"


def test_chain_without_failures_has_no_event_and_all_failed_raises(fake_server, sleeps):
    assert ProviderChain([StaticCountryProvider("GBR")]).latest().event is None
    fake_server.add(
        "/carbon-intensity/latest",
        Answer(body={"carbonIntensity": None, "datetime": "2024-01-01T00:00Z"}),
    )
    em = ElectricityMapsProvider(
        "t", "GB", RetryingHTTP("em", fake_server.url, sleep=sleeps.append)
    )
    with pytest.raises(AllProvidersFailed, match="carbonIntensity is null"):
        ProviderChain([em]).latest()


def test_cache_reuses_answers_within_ttl_and_asks_again_after(fake_server, sleeps):
    fake_server.add(
        "/intensity",
        Answer(
            body={
                "data": [
                    {
                        "from": "2024-01-01T00:00Z",
                        "to": "x",
                        "intensity": {"forecast": 100, "actual": 101},
                    }
                ]
            }
        ),
    )
    clock = Clock(datetime(2024, 1, 1, tzinfo=UTC))
    gb = GBCarbonIntensityProvider(RetryingHTTP("gb", fake_server.url, sleep=sleeps.append))
    cached = CachedProvider(gb, ttl_s=300, clock=clock)
    for _ in range(5):
        assert cached.latest().carbon_intensity_g_per_kwh == 101
    assert fake_server.hits("/intensity") == 1
    clock.now += timedelta(seconds=301)
    cached.latest()
    assert fake_server.hits("/intensity") == 2


def test_cache_never_serves_an_answer_into_the_next_slot(fake_server, sleeps):
    """Carbon decisions are per 30-minute slot: an answer read at 00:28 is not the 00:30 slot's,
    even within the TTL (the simulator reads each slot's own value)."""
    fake_server.add("/intensity", Answer(body={"data": [
        {"from": "2024-01-01T00:00Z", "to": "x", "intensity": {"forecast": 100, "actual": 101}}]}))
    clock = Clock(datetime(2024, 1, 1, 0, 28, tzinfo=UTC))
    cached = CachedProvider(GBCarbonIntensityProvider(
        RetryingHTTP("gb", fake_server.url, sleep=sleeps.append)), ttl_s=300, clock=clock)
    cached.latest()
    clock.now += timedelta(seconds=60)  # 00:29: same slot, within the TTL
    cached.latest()
    assert fake_server.hits("/intensity") == 1
    clock.now += timedelta(seconds=90)  # 00:30:30: a new slot, still within the TTL
    cached.latest()
    assert fake_server.hits("/intensity") == 2


def test_cache_does_not_remember_failures(fake_server, sleeps):
    fake_server.add(
        "/intensity",
        Answer(404, {"error": {"message": "gone"}}),
        Answer(body={"data": [{"from": "2024-01-01T00:00Z", "intensity": {"forecast": 90}}]}),
    )
    cached = CachedProvider(
        GBCarbonIntensityProvider(RetryingHTTP("gb", fake_server.url, sleep=sleeps.append))
    )
    with pytest.raises(Exception, match="gone"):
        cached.latest()
    assert cached.latest().carbon_intensity_g_per_kwh == 90


def test_static_provider_reads_codecarbon_country_data():
    gbr, fra = StaticCountryProvider("GBR").latest(), StaticCountryProvider("fra").latest()
    assert (
        100 < gbr.carbon_intensity_g_per_kwh < 500
        and fra.carbon_intensity_g_per_kwh < gbr.carbon_intensity_g_per_kwh
    )
    assert gbr.source == "codecarbon-static:GBR" and not gbr.is_forecast
    with pytest.raises(ValueError, match="country_iso3 'XXX'"):
        StaticCountryProvider("XXX")


def test_shipped_traces_load_from_package_data_on_a_30_minute_grid():
    gb = load_trace("gb-2020")
    assert gb.start == datetime(2019, 12, 20, tzinfo=UTC)
    assert gb.n_slots == 18576  # 2019-12-20 .. 2021-01-09 23:30, 15-minute rows averaged
    assert 60 < np.nanmin(gb.values_g_per_kwh) and np.nanmax(gb.values_g_per_kwh) < 400
    assert load_trace("fr-2020").n_slots == 18574


def test_trace_parser_keeps_missing_values_missing():
    text = (
        "Time,Carbon Intensity\n2020-01-01 00:00:00,100\n2020-01-01 00:15:00,200\n"
        "2020-01-01 00:30:00,\n2020-01-01 01:30:00,50\n"
    )
    trace = parse_trace_csv(text, "t")
    values = trace.values_g_per_kwh
    assert values[0] == 150 and np.isnan(values[1]) and np.isnan(values[2]) and values[3] == 50
    with pytest.raises(TraceError, match="header"):
        parse_trace_csv("a,b\n", "bad")
    with pytest.raises(TraceError, match="neither a shipped trace"):
        load_trace("no-such-trace")


def test_trace_replay_answers_the_slot_of_now_and_reports_gaps_as_missing():
    trace = parse_trace_csv(
        "Time,Carbon Intensity\n2020-01-01 00:00:00,100\n2020-01-01 00:30:00,\n"
        "2020-01-01 01:00:00,80\n",
        "t",
    )
    clock = Clock(datetime(2020, 1, 1, 0, 10, tzinfo=UTC))
    replay = TraceReplayProvider(trace, clock)
    assert replay.latest().carbon_intensity_g_per_kwh == 100
    assert [r.carbon_intensity_g_per_kwh for r in replay.forecast(2)] == [100, 80]
    clock.now = datetime(2020, 1, 1, 0, 40, tzinfo=UTC)
    with pytest.raises(ProviderDataMissing):
        replay.latest()
    looped = TraceReplayProvider(
        trace,
        Clock(datetime(2030, 1, 1, 1, 5, tzinfo=UTC)),
        anchor=datetime(2030, 1, 1, tzinfo=UTC),
    )
    assert looped.latest().carbon_intensity_g_per_kwh == 80
