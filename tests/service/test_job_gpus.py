"""A job's ``gpus``: strictly an int from 1 to the pool's GREENTRAINER_POOL__MAX_GPUS_PER_JOB,
default 1, recorded and shown by the native API and /v1 (``greentrainer.gpus``)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.service.conftest import Api


@pytest.mark.parametrize(("gpus", "message"), [
    (0, "greater than or equal to 1"), (-1, "greater than or equal to 1"),
    ("2", "valid integer"), (True, "valid integer"), (2.0, "valid integer"),
    (1000, "less than or equal to 64"), (None, "valid integer"),
    (9, "at most 8 (GREENTRAINER_POOL__MAX_GPUS_PER_JOB)"),
])
def test_a_bad_gpus_is_422_naming_the_field(api: Api, gpus: Any, message: str) -> None:
    assert api.settings.pool.max_gpus_per_job == 8  # the default
    team = api.new_team()
    r = api.submit(team, gpus=gpus)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["field"] == "gpus" and message in error["message"], error
    assert api.client.get("/jobs", headers=team).json()["data"] == [], "nothing recorded"


def test_gpus_is_recorded_and_shown_default_one(api: Api) -> None:
    team = api.new_team()
    two = api.submit(team, gpus=2)
    assert two.status_code == 201, two.text
    assert two.json()["gpus"] == 2
    assert api.client.get(f"/jobs/{two.json()['id']}", headers=team).json()["gpus"] == 2
    one = api.submit(team)
    assert one.json()["gpus"] == 1
    v1 = api.client.get(f"/v1/fine_tuning/jobs/{two.json()['id']}", headers=team).json()
    assert v1["greentrainer"]["gpus"] == 2


def test_v1_takes_gpus_in_its_greentrainer_options(api: Api) -> None:
    team = api.new_team()
    training = api.upload(team)
    body = {"model": "smollm2-135m-instruct", "training_file": training}
    r = api.client.post("/v1/fine_tuning/jobs", headers=team,
                        json={**body, "greentrainer": {"gpus": 4}})
    assert r.status_code in (200, 201), r.text
    assert r.json()["greentrainer"]["gpus"] == 4
    bad = api.client.post("/v1/fine_tuning/jobs", headers=team,
                          json={**body, "greentrainer": {"gpus": "4"}})
    assert bad.status_code == 400, bad.text
    assert bad.json()["error"]["param"] == "greentrainer.gpus"
    big = api.client.post("/v1/fine_tuning/jobs", headers=team,
                          json={**body, "greentrainer": {"gpus": 9}})
    assert big.status_code == 400 and big.json()["error"]["param"] == "greentrainer.gpus", big.text
