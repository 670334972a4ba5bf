"""Hostile or odd input never produces a 500: NUL characters, huge or malformed parameters,
overlong strings, wrong types. Each gets a 4xx."""

from __future__ import annotations

import pytest

from tests.service.conftest import Api

NUL = "\u0000"


@pytest.mark.parametrize("path", [
    "/jobs/%00", "/jobs/job_%00x", "/datasets/%00", "/jobs/" + "x" * 5000,
    "/jobs?after=%00", "/jobs?limit=0", "/jobs?limit=abc", "/jobs?limit=100000",
    "/jobs?status=exploded", "/jobs/%00/events?after=-1", "/teams/%00",
    "/jobs/x/events?after=99999999999999999999999", "/datasets?after=%00",
])
def test_odd_urls_are_4xx(api: Api, path: str) -> None:
    r = api.client.get(path, headers=api.new_team())
    assert 400 <= r.status_code < 500, (path, r.status_code, r.text)


@pytest.mark.parametrize("override", [
    {"model": NUL}, {"model": f"/models/{NUL}x"}, {"model": "acme/" + NUL},
    {"training_dataset": NUL}, {"validation_dataset": "ds" + NUL}, {"gpu_class": NUL},
    {"rho_policy": {"type": "carbon-aware", "rho_min": 0.2, "rho_max": 0.8, "region": NUL}},
    {"model": "m" * 10_000}, {"hyperparameters": {"epochs": 10**30}},
    {"hyperparameters": None}, {"rho_policy": None}, {"method": None},
    {"rho_policy": {"type": "schedule", "rhos": "0.5"}},
])
def test_odd_job_fields_are_4xx(api: Api, override: dict[str, object]) -> None:
    team = api.new_team()
    r = api.submit(team, **override)
    assert 400 <= r.status_code < 500, (override, r.status_code, r.text)
    assert r.json()["error"]["field"], r.text


def test_nul_in_idempotency_key_and_names_is_4xx(api: Api) -> None:
    team = api.new_team()
    r = api.client.post("/teams", json={"name": "a" + NUL}, headers=api.admin)
    assert 400 <= r.status_code < 500, r.text
    r = api.client.post("/datasets", files={"file": ("d.jsonl", b'{"source":"a","target":"b"}')},
                        data={"name": "x" + NUL}, headers=team)
    assert 400 <= r.status_code < 500, r.text
    r = api.client.post("/datasets", files={"file": ("d.jsonl", b'{"source":"a","target":"b"}')},
                        data={"source_field": NUL}, headers=team)
    assert 400 <= r.status_code < 500, r.text
