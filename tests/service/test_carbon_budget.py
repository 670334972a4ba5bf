"""A CO2 budget is checked at submission by the carbon planner: one that even the cheapest
feasible schedule cannot meet is a 422 naming that minimum and its rho; a feasible one is
accepted and its plan recorded on the job."""

from __future__ import annotations

import re

from tests.service.conftest import Api

POLICY = {"type": "carbon-aware", "rho_min": 0.4, "rho_max": 0.8, "region": "GB",
          "allow_low_rho": True}


def test_a_budget_nothing_can_meet_is_refused_naming_the_minimum(api: Api) -> None:
    team = api.new_team()
    refused = api.submit(team, rho_policy={**POLICY, "co2_budget_kg": 1e-6},
                         hyperparameters={"epochs": 3})
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["field"] == "rho_policy.co2_budget_kg"
    match = re.search(r"needs an estimated ([0-9.e-]+) kg CO2", error["message"])
    assert match and float(match.group(1)) > 1e-6 and "rho 0.4" in error["message"]
    assert api.client.get("/jobs", headers=team).json()["data"] == []


def test_a_feasible_budget_is_accepted_with_its_plan_recorded(api: Api) -> None:
    team = api.new_team()
    accepted = api.submit(team, rho_policy={**POLICY, "co2_budget_kg": 50.0},
                          hyperparameters={"epochs": 3})
    assert accepted.status_code == 201, accepted.text
    events = api.client.get(f"/jobs/{accepted.json()['id']}/events", headers=team).json()["data"]
    plan = next(e for e in events if e["type"] == "carbon_plan")
    assert plan["data"]["rho"] == 0.4 and 0 < plan["data"]["minimum_kg_co2"] < 50.0
    assert len(plan["data"]["planned_starts"]) == 3
    # No history recorded yet and the static provider's flat average: said, not hidden.
    assert plan["data"]["forecast_sources_hours"].get("static", 0) > 0
    # Nothing measured on the job's GPU class yet: the plan says it assumed the powers.
    assert plan["data"]["energy_model"]["source"] == "assumed"
