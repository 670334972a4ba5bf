"""The native POST /jobs takes OpenAI's `suffix` and `metadata` too: kept and shown, refused past
OpenAI's limits (422 naming the field), and an old request's Idempotency-Key still replays."""

from __future__ import annotations

import pytest

from tests.service.conftest import Api


def test_suffix_and_metadata_are_kept_and_shown(api: Api) -> None:
    team = api.new_team()
    r = api.submit(team, suffix="faq-bot", metadata={"project": "faq", "k" * 64: "v" * 512})
    assert r.status_code == 201, r.text
    job = api.client.get(f"/jobs/{r.json()['id']}", headers=team).json()
    assert job["suffix"] == "faq-bot" and job["metadata"]["project"] == "faq"


@pytest.mark.parametrize(("body", "needle"), [
    ({"metadata": {f"k{i}": "v" for i in range(17)}}, "at most 16"),
    ({"metadata": {"k" * 65: "v"}}, "1 to 64"),
    ({"metadata": {"k": "v" * 513}}, "at most 512"),
    ({"metadata": {"k": 3}}, "string"),
    ({"suffix": ""}, "at least 1"),
    ({"suffix": "s" * 65}, "at most 64"),
])
def test_past_openais_limits_is_422_naming_the_field(api: Api, body: dict[str, object],
                                                     needle: str) -> None:
    r = api.submit(api.new_team(), **body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["field"].split(".")[0] == next(iter(body)) and needle in error["message"]


def test_a_replay_without_the_new_fields_gets_the_same_job(api: Api) -> None:
    team = api.new_team()
    dataset = api.upload(team)
    first = api.submit(team, dataset=dataset, headers={"Idempotency-Key": "k1"})
    again = api.submit(team, dataset=dataset, headers={"Idempotency-Key": "k1"})
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    changed = api.submit(team, dataset=dataset, suffix="x", headers={"Idempotency-Key": "k1"})
    assert changed.status_code == 409
