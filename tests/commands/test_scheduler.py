"""`greentrainer scheduler` and `greentrainer simulate` entry points."""

from __future__ import annotations

import json

from greentrainer.commands.scheduler import scheduler_main
from greentrainer.commands.simulate import simulate_main


def test_simulate_prints_and_writes_the_table(tmp_path, capsys):
    out = tmp_path / "report.md"
    assert (
        simulate_main(
            ["--trace", "fr-2020", "--jobs", "8", "--kinds", "short", "--output", str(out)]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "| (a) full fine-tuning, start at once |" in printed and "realised / oracle" in printed
    assert out.read_text() == printed.rstrip("\n") + "\n"


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
