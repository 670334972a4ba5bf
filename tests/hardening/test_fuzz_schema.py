"""Property-based fuzzing of the whole API from its own OpenAPI schema (schemathesis): valid
and invalid requests for every operation, signed in as a team (or the admin for /teams), with
random ids and with real ones. No request may be answered with a 5xx."""

from __future__ import annotations

import logging
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from tests.service.conftest import Api

EXAMPLES_PER_OPERATION = 60  # per generation mode; the whole module runs in about a minute


def _settings() -> hypothesis.settings:
    return hypothesis.settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None,
                               database=None, derandomize=True,
                               suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def real_ids(hard_api: Api) -> dict[str, Any]:
    team = hard_api.new_team()
    dataset = hard_api.upload(team)
    job = hard_api.job_id(team, dataset=dataset)
    return {"team": team, "ids": {"job_id": job, "dataset_id": dataset, "file_id": dataset,
                                  "team_id": team["X-Team-Id"], "artifact_id": "art_x",
                                  "key_id": "key_x", "webhook_id": "whe_x", "epoch_index": 0}}


def _operations(api: Api) -> list[Any]:
    schema = schemathesis.openapi.from_dict(api.app.openapi())
    return [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE,
                                  schemathesis.GenerationMode.NEGATIVE])
def test_no_generated_request_gets_a_5xx(hard_api: Api, real_ids: dict[str, Any],
                                         mode: schemathesis.GenerationMode,
                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    base_url = str(hard_api.client.base_url)
    failures: list[str] = []
    calls = 0
    with requests.Session() as http:
        for operation in _operations(hard_api):
            auth = hard_api.admin if operation.path.startswith("/teams") else {
                "Authorization": real_ids["team"]["Authorization"]}
            names = {p.name for p in operation.path_parameters}
            strategy = operation.as_strategy(mode)
            if names:
                fixed = {n: real_ids["ids"][n] for n in names}
                strategy = st.one_of(strategy, operation.as_strategy(mode, path_parameters=fixed))

            @_settings()
            @given(case=strategy)
            def run(case: Any) -> None:
                nonlocal calls
                calls += 1
                response = case.call(base_url=base_url, session=http, headers=auth, timeout=30)
                if response.status_code >= 500:
                    failures.append(f"{case.method} {case.formatted_path} -> "
                                    f"{response.status_code}: {response.text[:200]} "
                                    f"(query={case.query!r} body={str(case.body)[:200]!r})")
            try:
                run()
            except hypothesis.errors.Unsatisfiable:  # nothing to negate (e.g. no parameters)
                assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label
    assert calls >= 100
    assert not failures, "\n".join(failures[:20])
    assert "unhandled error" not in caplog.text
