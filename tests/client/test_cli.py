"""`greentrainer jobs ...` and `greentrainer datasets ...` through the real entry point
(`python -m greentrainer` in a subprocess, configured by GREENTRAINER_BASE_URL and
GREENTRAINER_API_KEY): tables, --json parsed back, no bars when the output is not a terminal,
and one line with a non-zero exit for every bad input."""

from __future__ import annotations

import json

import pytest

from tests.client.conftest import Team, cli, play_in_background, write_rows
from tests.service.conftest import Api


def _ok(result) -> str:
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr and "it/s" not in result.stderr, result.stderr  # no bars
    return str(result.stdout)


def test_datasets_and_jobs_round_trip_as_json_and_as_tables(api: Api, team: Team,
                                                            tmp_path) -> None:
    url = str(api.client.base_url)
    path = write_rows(tmp_path / "train.jsonl", 12)
    dataset = json.loads(_ok(cli("datasets", "upload", str(path), "--name", "mine", "--json",
                                 base_url=url, key=team.key)))
    assert (dataset["object"], dataset["name"], dataset["row_count"]) == ("dataset", "mine", 12)
    shown = _ok(cli("datasets", "get", dataset["id"], base_url=url, key=team.key))
    assert "rows" in shown and "12" in shown and "source -> target" in shown
    listed = json.loads(_ok(cli("datasets", "list", "--json", base_url=url, key=team.key)))
    assert [d["id"] for d in listed["data"]] == [dataset["id"]] and listed["object"] == "list"

    job = json.loads(_ok(cli("jobs", "create", "--dataset", dataset["id"], "--epochs", "2",
                             "--rho-schedule", "0.4,0.8", "--json", base_url=url, key=team.key)))
    assert job["status"] == "queued" and job["hyperparameters"]["epochs"] == 2
    assert job["rho_policy"] == {"type": "schedule", "rhos": [0.4, 0.8]}
    other = json.loads(_ok(cli("jobs", "create", "--file", str(write_rows(tmp_path / "b.jsonl")),
                               "--rho", "0.5", "--json", base_url=url, key=team.key)))
    assert other["rho_policy"] == {"type": "fixed", "rho": 0.5}
    table = _ok(cli("jobs", "list", base_url=url, key=team.key)).splitlines()
    assert table[0].split() == ["ID", "STATUS", "MODEL", "METHOD", "EPOCHS", "CREATED"]
    assert [line.split()[0] for line in table[1:]] == [other["id"], job["id"]]
    assert table[2].split()[1:5] == ["queued", "smollm2-135m-instruct", "greentrainer", "0/2"]
    page = json.loads(_ok(cli("jobs", "list", "--limit", "1", "--json", base_url=url,
                              key=team.key)))
    assert page["has_more"] and [j["id"] for j in page["data"]] == [other["id"]]
    every = json.loads(_ok(cli("jobs", "list", "--all", "--json", base_url=url, key=team.key)))
    assert [j["id"] for j in every] == [other["id"], job["id"]]

    cancelled = json.loads(_ok(cli("jobs", "cancel", other["id"], "--json", base_url=url,
                                   key=team.key)))
    assert cancelled["status"] == "cancelled"
    events = [json.loads(line) for line in _ok(cli("jobs", "events", other["id"], "--json",
                                                   base_url=url, key=team.key)).splitlines()]
    assert [e["type"] for e in events] == ["created", "status", "status"]
    assert events[-1]["data"] == {"from": "queued", "to": "cancelled"}
    assert "no finished epochs yet" in _ok(cli("jobs", "checkpoints", job["id"], base_url=url,
                                               key=team.key))
    got = _ok(cli("jobs", "get", job["id"], base_url=url, key=team.key))
    assert f"id                {job['id']}" in got and "status            queued" in got


def test_watch_without_a_terminal_prints_a_line_per_event_and_the_outcome(api: Api, team: Team,
                                                                          tmp_path) -> None:
    url = str(api.client.base_url)
    created = cli("jobs", "create", "--file", str(write_rows(tmp_path / "t.jsonl")), "--epochs",
                  "2", "--json", base_url=url, key=team.key)
    job = json.loads(_ok(created))
    worker = play_in_background(api, job["id"], [0.5, 0.5], step_s=0.2)
    watched = cli("jobs", "watch", job["id"], base_url=url, key=team.key)
    worker.join()
    out = _ok(watched).splitlines()
    assert any("epoch_start" in line and "epoch 1/2" in line and "rho 0.50" in line for line in out)
    assert any(" epoch " in line and "CO2 4.00 g" in line and "loss 1.5000" in line for line in out)
    assert out[-1] == f"job {job['id']} succeeded: 2 epoch(s), CO2 4.00 g"
    again = cli("jobs", "watch", job["id"], "--json", base_url=url, key=team.key)
    assert json.loads(_ok(again))["status"] == "succeeded"
    checkpoints = json.loads(_ok(cli("jobs", "checkpoints", job["id"], "--json", base_url=url,
                                     key=team.key)))
    assert [(c["epoch_index"], c["kg_co2"]) for c in checkpoints] == [(0, 0.002), (1, 0.002)]


def test_watch_of_a_failed_job_exits_1_naming_the_error(api: Api, team: Team, tmp_path) -> None:
    url = str(api.client.base_url)
    job = json.loads(_ok(cli("jobs", "create", "--file", str(write_rows(tmp_path / "t.jsonl")),
                             "--json", base_url=url, key=team.key)))
    play_in_background(api, job["id"], [0.5], step_s=0, outcome="failed").join()
    result = cli("jobs", "watch", job["id"], base_url=url, key=team.key)
    assert result.returncode == 1
    assert result.stderr.strip() == (f"greentrainer jobs watch: error: job {job['id']} failed: "
                                     "training_error: loss is NaN")


@pytest.mark.parametrize("case", ["no key", "wrong key", "unknown job", "another team's job",
                                  "missing file", "a directory", "no server", "bad body"])
def test_bad_input_exits_non_zero_with_one_line(api: Api, team: Team, tmp_path, case) -> None:
    url = str(api.client.base_url)
    their_job = api.job_id(api.new_team())
    args, key, base, code, expected = {
        "no key": (("jobs", "list"), None, url, 2,
                   "greentrainer jobs list: error: no API key: set GREENTRAINER_API_KEY or pass "
                   "--api-key"),
        "wrong key": (("datasets", "list"), "gt_wrong", url, 1,
                      "greentrainer datasets list: error: unknown or revoked API key (HTTP 401, "
                      "not_authenticated)"),
        "unknown job": (("jobs", "get", "job_nope"), team.key, url, 1,
                        "greentrainer jobs get: error: no job with id 'job_nope'"),
        "another team's job": (("jobs", "cancel", their_job), team.key, url, 1,
                               f"greentrainer jobs cancel: error: no job with id '{their_job}'"),
        "missing file": (("datasets", "upload", str(tmp_path / "nope.jsonl")), team.key, url, 2,
                         f"greentrainer datasets upload: error: no such file: "
                         f"'{tmp_path / 'nope.jsonl'}'"),
        "a directory": (("jobs", "create", "--file", str(tmp_path)), team.key, url, 2,
                        f"greentrainer jobs create: error: not a file: '{tmp_path}'"),
        "no server": (("jobs", "list"), team.key, "http://127.0.0.1:9", 1,
                      "greentrainer jobs list: error: cannot reach http://127.0.0.1:9"),
        "bad body": (("jobs", "create", "--dataset", "ds_nope"), team.key, url, 1,
                     "greentrainer jobs create: error: "),
    }[case]
    result = cli(*args, base_url=base, key=key)
    assert result.returncode == code, result
    assert result.stdout == "" and len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(expected), result.stderr
    assert "Traceback" not in result.stderr
