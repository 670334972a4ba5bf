"""The quality floor of every rho policy (greentrainer_carbon.rho_policy)."""

import pytest

from greentrainer_carbon.rho_policy import (
    RHO_FLOOR,
    below_floor,
    floor_of,
    honour_floor,
    lowest_rho,
)


@pytest.mark.parametrize(("policy", "lowest"), [
    ({"type": "fixed", "rho": 0.7}, 0.7),
    ({"type": "schedule", "rhos": [0.9, 0.55, 0.8]}, 0.55),
    ({"type": "carbon-aware", "rho_min": 0.45, "rho_max": 0.9}, 0.45),
    ({"type": "greedy"}, None),
])
def test_lowest_rho_of_each_kind(policy, lowest):
    assert lowest_rho(policy) == lowest


def test_below_floor_names_the_field_the_floor_and_the_override():
    message = below_floor({"type": "carbon-aware", "rho_min": 0.4, "rho_max": 0.9}, floor=0.5)
    assert message is not None
    assert message.startswith("rho_min 0.4 is below the quality floor rho 0.5")
    assert "allow_low_rho" in message
    assert below_floor({"type": "fixed", "rho": 0.5}, floor=0.5) is None
    assert below_floor({"type": "fixed", "rho": 0.3, "allow_low_rho": True}, floor=0.5) is None


def test_a_run_time_rho_is_raised_to_the_floor_unless_the_job_accepts_the_loss():
    strict = {"type": "carbon-aware", "rho_min": RHO_FLOOR, "rho_max": 0.9}
    assert honour_floor(0.3, strict) == RHO_FLOOR
    assert honour_floor(0.8, strict) == 0.8
    assert honour_floor(0.3, {**strict, "allow_low_rho": True}) == 0.3
    assert floor_of({**strict, "allow_low_rho": True}) == 0.0
    assert 0.0 < RHO_FLOOR < 1.0
