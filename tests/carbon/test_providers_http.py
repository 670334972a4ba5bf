"""GB, Electricity Maps and WattTime clients against a loopback server in each documented shape."""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime

import pytest

from greentrainer_carbon.errors import ProviderDataMissing, ProviderHTTPError, ProviderResponseError
from greentrainer_carbon.providers import (
    ElectricityMapsProvider,
    GBCarbonIntensityProvider,
    WattTimeProvider,
)
from greentrainer_carbon.retrying_http import RetryingHTTP

from .conftest import Answer

NOW = datetime(2024, 4, 1, 12, 10, tzinfo=UTC)


def http(server, name, sleeps, **kw):
    return RetryingHTTP(
        name, server.url, timeout_s=kw.pop("timeout_s", 2.0), sleep=sleeps.append, **kw
    )


def gb_slot(start, forecast, actual=None):
    return {
        "from": start,
        "to": start,
        "intensity": {"forecast": forecast, "actual": actual, "index": "low"},
    }


def test_gb_national_prefers_actual_and_marks_forecast_only_values(fake_server, sleeps):
    fake_server.add(
        "/intensity",
        Answer(body={"data": [gb_slot("2024-04-01T12:00Z", 266, 263)]}),
        Answer(body={"data": [gb_slot("2024-04-01T12:30Z", 270, None)]}),
    )
    gb = GBCarbonIntensityProvider(http(fake_server, "gb", sleeps), clock=lambda: NOW)
    first = gb.latest()
    assert (first.carbon_intensity_g_per_kwh, first.is_forecast, first.signal) == (
        263.0,
        False,
        "average",
    )
    assert first.timestamp == datetime(2024, 4, 1, 12, 0, tzinfo=UTC)
    second = gb.latest()
    assert (second.carbon_intensity_g_per_kwh, second.is_forecast) == (270.0, True)


def test_gb_null_intensity_is_missing_not_zero(fake_server, sleeps):
    fake_server.add("/intensity", Answer(body={"data": [gb_slot("2024-04-01T12:00Z", None, None)]}))
    with pytest.raises(ProviderDataMissing, match="null"):
        GBCarbonIntensityProvider(http(fake_server, "gb", sleeps)).latest()


def test_gb_forecast_skips_null_slots_and_asks_fw48h_for_long_horizons(fake_server, sleeps):
    slots = [
        gb_slot("2024-04-01T12:00Z", 200),
        gb_slot("2024-04-01T12:30Z", None),
        gb_slot("2024-04-01T13:00Z", 180),
    ]
    fake_server.add("/intensity/2024-04-01T12:10Z/fw48h", Answer(body={"data": slots}))
    readings = GBCarbonIntensityProvider(
        http(fake_server, "gb", sleeps), clock=lambda: NOW
    ).forecast(30)
    assert [r.carbon_intensity_g_per_kwh for r in readings] == [200.0, 180.0]
    assert all(r.is_forecast for r in readings)


def test_gb_regional_reads_nested_forecast(fake_server, sleeps):
    region = {
        "regionid": 13,
        "dnoregion": "UKPN London",
        "shortname": "London",
        "data": [
            {
                "from": "2024-04-01T12:00Z",
                "to": "2024-04-01T12:30Z",
                "intensity": {"forecast": 150, "index": "low"},
                "generationmix": [{"fuel": "gas", "perc": 43.6}],
            }
        ],
    }
    fake_server.add("/regional/regionid/13", Answer(body={"data": [region]}))
    fake_server.add(
        "/regional/intensity/2024-04-01T12:10Z/fw24h/regionid/13", Answer(body={"data": region})
    )
    gb = GBCarbonIntensityProvider(http(fake_server, "gb", sleeps), region_id=13, clock=lambda: NOW)
    assert gb.latest().carbon_intensity_g_per_kwh == 150.0 and gb.latest().is_forecast
    assert [r.carbon_intensity_g_per_kwh for r in gb.forecast(24)] == [150.0]


def test_gb_error_body_message_is_reported_without_retry(fake_server, sleeps):
    fake_server.add(
        "/intensity", Answer(400, {"error": {"code": "400 Bad Request", "message": "Invalid date"}})
    )
    with pytest.raises(ProviderHTTPError, match="Invalid date") as info:
        GBCarbonIntensityProvider(http(fake_server, "gb", sleeps)).latest()
    assert info.value.status_code == 400 and fake_server.hits("/intensity") == 1 and sleeps == []


def test_gb_unexpected_shape_names_the_missing_field(fake_server, sleeps):
    fake_server.add("/intensity", Answer(body={"result": []}))
    with pytest.raises(ProviderResponseError, match="'data'"):
        GBCarbonIntensityProvider(http(fake_server, "gb", sleeps)).latest()


def test_electricitymaps_sends_token_header_and_reads_latest(fake_server, sleeps):
    fake_server.add(
        "/v3/carbon-intensity/latest",
        Answer(
            body={
                "zone": "DE",
                "carbonIntensity": 216,
                "datetime": "2024-03-06T19:00:00.000Z",
                "updatedAt": "2024-03-06T18:58:00.000Z",
                "emissionFactorType": "lifecycle",
                "isEstimated": True,
            }
        ),
    )
    em = ElectricityMapsProvider(
        "s3cret-token",
        "DE",
        http(
            fake_server,
            "em",
            sleeps,
        ),
    )
    em.http.base_url = fake_server.url + "/v3"
    reading = em.latest()
    assert reading.carbon_intensity_g_per_kwh == 216.0 and reading.signal == "average"
    seen = fake_server.requests[-1]
    assert seen.headers.get("auth-token") == "s3cret-token" and seen.query == {"zone": ["DE"]}
    assert "s3cret-token" not in repr(em)


def test_electricitymaps_null_latest_is_missing_and_null_forecast_points_are_dropped(
    fake_server, sleeps
):
    fake_server.add(
        "/carbon-intensity/latest",
        Answer(
            body={"zone": "NL", "carbonIntensity": None, "datetime": "2024-03-06T19:00:00.000Z"}
        ),
    )
    fake_server.add(
        "/carbon-intensity/forecast",
        Answer(
            body={
                "zone": "NL",
                "forecast": [
                    {"datetime": "2024-03-06T19:00:00.000Z", "carbonIntensity": 312},
                    {"datetime": "2024-03-06T20:00:00.000Z", "carbonIntensity": None},
                    {"datetime": "2024-03-06T21:00:00.000Z", "carbonIntensity": 290},
                ],
                "updatedAt": "x",
            }
        ),
    )
    em = ElectricityMapsProvider("tok", "NL", http(fake_server, "em", sleeps))
    with pytest.raises(ProviderDataMissing):
        em.latest()
    assert [r.carbon_intensity_g_per_kwh for r in em.forecast(24)] == [312.0, 290.0]


def test_electricitymaps_401_is_an_http_error_without_the_token(fake_server, sleeps, caplog):
    caplog.set_level(logging.DEBUG)
    fake_server.add("/carbon-intensity/latest", Answer(401, {"message": "Invalid auth-token"}))
    with pytest.raises(ProviderHTTPError, match="401") as info:
        ElectricityMapsProvider("very-secret", "GB", http(fake_server, "em", sleeps)).latest()
    assert "very-secret" not in str(info.value)
    assert all("very-secret" not in r.getMessage() for r in caplog.records)


def watttime_body(values, units="lbs_co2_per_mwh"):
    return {
        "data": [{"point_time": t, "value": v, "version": "1.0"} for t, v in values],
        "meta": {
            "region": "CAISO_NORTH",
            "signal_type": "co2_moer",
            "units": units,
            "data_point_period_seconds": 300,
            "generated_at": "2024-04-01T12:10:00+00:00",
        },
    }


def test_watttime_logs_in_with_basic_auth_and_converts_lbs_per_mwh(fake_server, sleeps):
    fake_server.add("/login", Answer(body={"token": "bearer-abc"}))
    fake_server.add(
        "/v3/forecast",
        Answer(
            body=watttime_body(
                [("2024-04-01T12:10:00+00:00", 1000.0), ("2024-04-01T12:15:00+00:00", 500.0)]
            )
        ),
    )
    wt = WattTimeProvider(
        "user", "pw-secret", "CAISO_NORTH", http(fake_server, "wt", sleeps), clock=lambda: NOW
    )
    reading = wt.latest()
    assert reading.carbon_intensity_g_per_kwh == pytest.approx(453.592)
    assert reading.signal == "marginal" and not reading.is_forecast
    login = next(r for r in fake_server.requests if r.path == "/login")
    assert login.headers["Authorization"] == "Basic " + base64.b64encode(b"user:pw-secret").decode()
    call = fake_server.requests[-1]
    assert call.headers["Authorization"] == "Bearer bearer-abc" and call.query["signal_type"] == [
        "co2_moer"
    ]
    forecast = wt.forecast(24)
    assert forecast[1].is_forecast and forecast[1].carbon_intensity_g_per_kwh == pytest.approx(
        226.796
    )
    assert fake_server.hits("/login") == 1 and "pw-secret" not in repr(wt)


def test_watttime_logs_in_again_on_401(fake_server, sleeps):
    fake_server.add("/login", Answer(body={"token": "old"}), Answer(body={"token": "new"}))
    fake_server.add(
        "/v3/forecast",
        Answer(401, {"error": "expired"}),
        Answer(body=watttime_body([("2024-04-01T12:10:00+00:00", 800.0)])),
    )
    wt = WattTimeProvider(
        "u", "p", "CAISO_NORTH", http(fake_server, "wt", sleeps), clock=lambda: NOW
    )
    assert wt.latest().carbon_intensity_g_per_kwh == pytest.approx(800 * 0.453592)
    assert fake_server.hits("/login") == 2
    assert fake_server.requests[-1].headers["Authorization"] == "Bearer new"


def test_watttime_unknown_units_are_rejected(fake_server, sleeps):
    fake_server.add("/login", Answer(body={"token": "t"}))
    fake_server.add(
        "/v3/forecast", Answer(body=watttime_body([("2024-04-01T12:10:00+00:00", 1.0)], "percent"))
    )
    with pytest.raises(ProviderResponseError, match="units"):
        WattTimeProvider("u", "p", "X", http(fake_server, "wt", sleeps)).latest()
