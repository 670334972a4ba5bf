"""`greentrainer scheduler` and `greentrainer simulate` entry points."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from greentrainer.commands.scheduler import scheduler_main
from greentrainer.commands.simulate import simulate_main


def test_simulate_prints_and_writes_the_table_and_the_json_rows(tmp_path, capsys):
    out, rows = tmp_path / "report.md", tmp_path / "rows.json"
    assert simulate_main(["--trace", "fr-2020", "--jobs", "6", "--kinds", "short",
                          "--forecasts", "history,oracle", "--output", str(out),
                          "--json", str(rows)]) == 0
    printed = capsys.readouterr().out
    assert "| (d) carbon-aware rho + green windows | perfect foresight (oracle) |" in printed
    assert "of the oracle's" in printed
    assert out.read_text() == printed.rstrip("\n") + "\n"
    data = json.loads(rows.read_text())
    assert {r["policy"] for r in data} == {"fixed", "window", "carbon_aware", "both"}
    assert {r["forecast"] for r in data} == {"history", "oracle"}
    for row in data:
        assert row["job_kind"] == "short" and row["slack_hours"] == 24.0
        assert 0 < row["co2_saved_pct"] < 100 and 0.4 <= row["mean_rho"] <= 0.8


def test_simulate_reads_a_trace_in_other_shapes_and_reports_the_gaps_it_filled(tmp_path, capsys):
    # An hourly export with its own header names, an empty value and a missing hour.
    lines = ["datetime,zone,Carbon Intensity gCO2eq/kWh (LCA)"]
    start = datetime(2021, 3, 1, tzinfo=UTC)
    for hour in range(24 * 12):
        if hour == 200:
            continue
        value = "" if hour == 100 else f"{200 + 80 * ((hour // 6) % 2)}"
        lines.append(f"{(start + timedelta(hours=hour)).isoformat()},DE,{value}")
    path = tmp_path / "de_hourly.csv"
    path.write_text("\n".join(lines) + "\n")
    assert simulate_main(["--trace", str(path), "--jobs", "3", "--kinds", "short",
                          "--forecasts", "history", "--slack-hours", "12"]) == 0
    printed = capsys.readouterr().out
    assert "## Carbon simulation: de_hourly" in printed
    assert "had 4 missing 30-minute slot(s)" in printed


@pytest.mark.parametrize(("text", "message"), [
    ("when,what\n2021-01-01 00:00,1\n", "no timestamp column"),
    ("Time,Carbon Intensity\n2021-01-01 00:00:00,100\n2021-01-01 00:07:00,90\n"
     "2021-01-01 00:14:00,80\n", "7 minutes apart"),
    ("Time,Carbon Intensity\n2021-01-01 00:00:00,100\nyesterday,90\n", "line 3"),
    ("Time,Carbon Intensity\n2021-01-01 00:00:00,-5\n2021-01-01 00:30:00,1\n", "line 2"),
])
def test_simulate_names_what_is_wrong_with_a_trace_file(tmp_path, capsys, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    assert simulate_main(["--trace", str(path), "--jobs", "2"]) == 2
    assert message in capsys.readouterr().err


def test_simulate_reports_bad_options_without_a_traceback(capsys):
    assert simulate_main(["--kinds", "huge"]) == 2
    assert "--kinds has unknown ['huge']" in capsys.readouterr().err
    assert simulate_main(["--rho-min", "0.9", "--rho-max", "0.5"]) == 2
    assert "rho_max" in capsys.readouterr().err


def test_scheduler_prints_the_live_decision_from_the_offline_provider(capsys, monkeypatch):
    monkeypatch.setenv("GREENTRAINER_STATIC_COUNTRY_ISO3", "FRA")
    assert scheduler_main(["--providers", "static", "--rho-min", "0.5"]) == 0
    decision = json.loads(capsys.readouterr().out)
    assert decision["reading"]["source"] == "codecarbon-static:FRA"
    assert 0.5 <= decision["rho"] <= 1.0 and decision["fallback"] is None


def test_scheduler_once_prints_a_dispatch_dry_run(tmp_path, capsys):
    spec = {
        "queued": [
            {"job_id": "j1", "team": "a", "gpu_class": "a100", "submitted_at": "2024-01-01T00:00Z"},
            {"job_id": "j2", "team": "b", "gpu_class": "a100", "submitted_at": "2024-01-01T00:05Z"},
        ],
        "free_slots": {"a100": 1},
        "teams": [{"team": "a", "recent_usage": 9}, {"team": "b", "recent_usage": 1}],
    }
    path = tmp_path / "queue.json"
    path.write_text(json.dumps(spec))
    assert scheduler_main(["--once", "--queue", str(path)]) == 0
    assert capsys.readouterr().out.strip() == "1. start j2 (team b) on a100"
    path.write_text(json.dumps({**spec, "teams": []}))
    assert scheduler_main(["--once", "--queue", str(path)]) == 2
    assert "no usage record" in capsys.readouterr().err


def test_scheduler_reads_the_gb_api_named_by_the_environment(fake_server, monkeypatch, capsys):
    from tests.carbon.conftest import Answer

    fake_server.add(
        "/intensity",
        Answer(
            body={
                "data": [
                    {"from": "2024-01-01T00:00Z", "intensity": {"forecast": 120, "actual": 118}}
                ]
            }
        ),
    )
    monkeypatch.setenv("GREENTRAINER_CARBON__PROVIDERS", "gb")
    monkeypatch.setenv("GREENTRAINER_CARBON__GB_API_BASE_URL", fake_server.url)
    monkeypatch.setenv("GREENTRAINER_CARBON__HTTP_MAX_RETRIES", "0")
    assert scheduler_main([]) == 0
    decision = json.loads(capsys.readouterr().out)
    assert decision["reading"]["source"] == "gb-carbon-intensity"
    assert decision["reading"]["carbon_intensity_g_per_kwh"] == 118.0
    # No forecast route on the fake: the forecast fell back to the static provider, and says so.
    assert decision["fallback"]["used"] == "codecarbon-static:GBR"
