"""The job request schema, property-tested: every rho in [MIN_RHO, 1] is accepted and every other
value is refused with an error located at the offending field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from greentrainer_carbon.rho_policy import RHO_FLOOR
from service.http_errors import field_name
from service.schemas import MIN_RHO, JobCreate

IN_RANGE = st.floats(min_value=MIN_RHO, max_value=1)
OUT_OF_RANGE = st.one_of(st.floats(max_value=MIN_RHO, exclude_max=True),
                         st.floats(min_value=1, exclude_min=True), st.just(float("nan")),
                         st.booleans(), st.just("0.5"))


def _job(policy: dict[str, object]) -> JobCreate:
    return JobCreate.model_validate({"model": "m", "training_dataset": "ds", "rho_policy": policy})


def _error_fields(policy: dict[str, object]) -> set[str]:
    with pytest.raises(ValidationError) as info:
        _job(policy)
    return {field_name(error["loc"]) for error in info.value.errors()}


@settings(max_examples=80, deadline=None, database=None)
@given(IN_RANGE)
def test_any_rho_in_range_is_accepted(rho: float) -> None:
    policy = {"type": "fixed", "rho": rho, "allow_low_rho": True}
    assert _job(policy).rho_policy.rho == rho  # type: ignore[union-attr]


@settings(max_examples=80, deadline=None, database=None)
@given(IN_RANGE)
def test_without_the_override_a_rho_is_accepted_exactly_at_or_above_the_floor(rho: float) -> None:
    if rho >= RHO_FLOOR:
        _job({"type": "fixed", "rho": rho})
    else:
        assert _error_fields({"type": "fixed", "rho": rho}) == {"rho_policy.rho"}


@settings(max_examples=80, deadline=None, database=None)
@given(OUT_OF_RANGE)
def test_any_rho_out_of_range_is_refused_at_its_field(rho: float) -> None:
    assert _error_fields({"type": "fixed", "rho": rho}) == {"rho_policy.rho"}


@settings(max_examples=80, deadline=None, database=None)
@given(IN_RANGE, IN_RANGE)
def test_carbon_aware_bounds_are_accepted_exactly_when_ordered(low: float, high: float) -> None:
    policy = {"type": "carbon-aware", "rho_min": low, "rho_max": high, "region": "GB",
              "allow_low_rho": True}
    if low <= high:
        _job(policy)
    else:
        assert _error_fields(policy) == {"rho_policy.rho_max"}


@settings(max_examples=40, deadline=None, database=None)
@given(st.integers(min_value=-10**6, max_value=-1))
def test_any_past_deadline_is_refused(seconds_ago: int) -> None:
    deadline = (datetime.now(UTC) + timedelta(seconds=seconds_ago)).isoformat()
    policy = {"type": "carbon-aware", "rho_min": 0.6, "rho_max": 0.8, "region": "GB",
              "deadline": deadline}
    assert _error_fields(policy) == {"rho_policy.deadline"}


def test_a_deadline_without_a_time_zone_is_refused_at_its_field() -> None:
    # it once was read as UTC, silently: a client in Paris meant an hour earlier
    deadline = (datetime.now(UTC) + timedelta(hours=2)).replace(tzinfo=None).isoformat()
    assert _error_fields({"type": "carbon-aware", "rho_min": 0.5, "rho_max": 0.8,
                          "region": "GB", "deadline": deadline}) == {"rho_policy.deadline"}


def test_every_policy_may_carry_a_deadline_and_a_region() -> None:
    deadline = (datetime.now(UTC) + timedelta(hours=6)).isoformat()
    fixed = _job({"type": "fixed", "rho": 0.6, "deadline": deadline, "region": "FR"}).rho_policy
    assert fixed.deadline is not None and fixed.region == "FR"
    schedule = _job({"type": "schedule", "rhos": [0.6, 0.7], "deadline": deadline}).rho_policy
    assert schedule.deadline is not None and schedule.region is None


@settings(max_examples=60, deadline=None, database=None)
@given(IN_RANGE)
def test_rho_target_is_accepted_exactly_inside_the_range(target: float) -> None:
    policy = {"type": "carbon-aware", "rho_min": 0.5, "rho_max": 0.8, "region": "GB",
              "rho_target": target}
    if 0.5 <= target <= 0.8:
        assert _job(policy).rho_policy.rho_target == target  # type: ignore[union-attr]
    else:
        assert _error_fields(policy) == {"rho_policy.rho_target"}


def test_the_mapping_is_mean_preserving_unless_quantile_is_named() -> None:
    base = {"type": "carbon-aware", "rho_min": 0.5, "rho_max": 0.8, "region": "GB"}
    assert _job(base).rho_policy.mapping == "mean_preserving"  # type: ignore[union-attr]
    assert _job({**base, "mapping": "quantile"}).rho_policy.mapping == "quantile"  # type: ignore[union-attr]
    assert _error_fields({**base, "mapping": "median"}) == {"rho_policy.mapping"}
