"""The quality floor: the API refuses a rho policy below RHO_FLOOR unless the job accepts the loss."""

from typing import Any

import pytest

from greentrainer_carbon.rho_policy import RHO_FLOOR
from tests.service.conftest import Api

LOW = round(RHO_FLOOR - 0.1, 2)
BELOW = [
    ({"type": "fixed", "rho": LOW}, "rho_policy.rho", "rho"),
    ({"type": "schedule", "rhos": [0.8, LOW, 0.8]}, "rho_policy.rhos", "rhos"),
    ({"type": "carbon-aware", "rho_min": LOW, "rho_max": 0.9, "region": "GB"},
     "rho_policy.rho_min", "rho_min"),
]


@pytest.mark.parametrize(("policy", "field", "name"), BELOW, ids=lambda v: str(v)[:20])
def test_a_policy_below_the_floor_is_422_naming_the_floor(api: Api, policy: dict[str, Any],
                                                          field: str, name: str) -> None:
    team = api.new_team()
    r = api.submit(team, rho_policy=policy, hyperparameters={"epochs": 3})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["field"] == field
    assert f"{name} {LOW:g} is below the quality floor rho {RHO_FLOOR:g}" in error["message"]
    assert "allow_low_rho" in error["message"]
    assert api.client.get("/jobs", headers=team).json()["data"] == [], "nothing recorded"


@pytest.mark.parametrize(("policy", "field", "name"), BELOW, ids=lambda v: str(v)[:20])
def test_allow_low_rho_accepts_the_loss_and_is_recorded(api: Api, policy: dict[str, Any],
                                                        field: str, name: str) -> None:
    team = api.new_team()
    r = api.submit(team, rho_policy={**policy, "allow_low_rho": True},
                   hyperparameters={"epochs": 3})
    assert r.status_code == 201, r.text
    assert r.json()["rho_policy"]["allow_low_rho"] is True


def test_the_floor_itself_is_accepted_without_the_override(api: Api) -> None:
    team = api.new_team()
    r = api.submit(team, rho_policy={"type": "fixed", "rho": RHO_FLOOR})
    assert r.status_code == 201, r.text
    assert r.json()["rho_policy"]["allow_low_rho"] is False
