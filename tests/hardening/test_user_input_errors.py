"""Fault class: exceptions outside the error tree. User input that Python itself refuses to load
(JSON nested past the recursion limit, an integer of 50,000 digits) and a blob store that cannot
be written once answered 500 (and left a `.upload-*` file behind). Every parser error is now a
422 naming the line, a storage error a 503/507 with nothing left; and loose types and bounds
(rho 5e-324 or true, epochs "3", a deadline without a time zone, a region or GPU class that is
a path) are refused naming the field."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require
from tests.hardening.conftest import live_api
from tests.service.conftest import Api

DEEP = 20_000  # far past Python's recursion limit, well under the test upload limit


def _team_and_dataset(api: Api) -> tuple[dict[str, str], str]:
    team = api.new_team()
    return team, api.upload(team)


@pytest.mark.parametrize(("body", "problem"), [
    ('{"source": ' + "[" * DEEP + "]" * DEEP + ', "target": "x"}\n', "nested too deeply"),
    ('{"source": "a", "target": "b", "n": ' + "9" * 50_000 + "}\n", "more than 4300 digits"),
])
def test_an_unloadable_jsonl_line_is_422_naming_it(hard_api: Api, body: str,
                                                   problem: str) -> None:
    data = b'{"source": "a", "target": "b"}\n' + body.encode()
    r = hard_api.client.post("/datasets", files={"file": ("x.jsonl", data)},
                             headers=hard_api.new_team())
    assert r.status_code == 422, r.text[:300]
    assert r.json()["error"]["message"].startswith("line 2: ")
    assert problem in r.json()["error"]["message"]


@pytest.mark.parametrize(("raw", "problem"), [
    ('"epochs": ' + "9" * 50_000, "more than 4300 digits"),
    ('"x": ' + "[" * DEEP + "]" * DEEP, "nested too deeply"),
])
def test_an_unloadable_job_body_is_422_naming_the_problem(hard_api: Api, raw: str,
                                                          problem: str) -> None:
    team, dataset = _team_and_dataset(hard_api)
    body = ('{"model": "smollm2-135m-instruct", "training_dataset": "' + dataset + '", '
            '"hyperparameters": {' + raw + '}}')
    r = hard_api.client.post("/jobs", content=body.encode(),
                             headers={**team, "Content-Type": "application/json"})
    assert r.status_code == 422, r.text[:300]
    assert problem in r.json()["error"]["message"]


@pytest.mark.parametrize(("change", "field"), [
    ({"rho_policy": {"type": "fixed", "rho": 5e-324}}, "rho_policy.rho"),
    ({"rho_policy": {"type": "fixed", "rho": True}}, "rho_policy.rho"),
    ({"rho_policy": {"type": "fixed", "rho": "0.5"}}, "rho_policy.rho"),
    ({"hyperparameters": {"epochs": "3"}}, "hyperparameters.epochs"),
    ({"hyperparameters": {"epochs": 3.0}}, "hyperparameters.epochs"),
    ({"hyperparameters": {"epochs": True}}, "hyperparameters.epochs"),
    ({"hyperparameters": {"learning_rate": "1e-5"}}, "hyperparameters.learning_rate"),
    ({"rho_policy": {"type": "carbon-aware", "rho_min": 0.5, "rho_max": 0.8, "region": "GB",
                     "deadline": "2099-01-01T10:00:00"}}, "rho_policy.deadline"),
    ({"rho_policy": {"type": "carbon-aware", "rho_min": 0.5, "rho_max": 0.8,
                     "region": "../../x"}}, "rho_policy.region"),
    ({"rho_policy": {"type": "carbon-aware", "rho_min": 0.5, "rho_max": 0.8,
                     "region": "XX"}}, "rho_policy.region"),
    ({"gpu_class": "../../x"}, "gpu_class"),
    ({"gpu_class": "A100 "}, "gpu_class"),
])
def test_loose_types_and_unknown_places_are_422_naming_the_field(
        hard_api: Api, change: dict[str, Any], field: str) -> None:
    team, dataset = _team_and_dataset(hard_api)
    r = hard_api.submit(team, dataset, **change)
    assert r.status_code == 422, r.text[:300]
    assert r.json()["error"]["field"] == field, r.text[:300]


def test_a_good_body_with_an_int_rho_and_a_zoned_deadline_is_accepted(hard_api: Api) -> None:
    team, dataset = _team_and_dataset(hard_api)
    r = hard_api.submit(team, dataset, rho_policy={"type": "fixed", "rho": 1},
                        hyperparameters={"epochs": 2, "learning_rate": 1e-4})
    assert r.status_code == 201, r.text[:300]
    paris = timezone(timedelta(hours=1))
    deadline = (datetime.now(paris) + timedelta(days=2)).isoformat()
    r = hard_api.submit(team, dataset, rho_policy={
        "type": "carbon-aware", "rho_min": 0.5, "rho_max": 0.8, "region": "FR",
        "deadline": deadline})
    assert r.status_code == 201, r.text[:300]


def test_the_dashboard_form_names_the_same_problems(hard_api: Api) -> None:
    from service.dashboard.forms import job_payload
    from service.schemas import JobCreate

    payload = job_payload({"model": "m", "rho_type": "fixed", "rho": "0.5", "epochs": "3",
                           "learning_rate": "1e-5"}, "ds_x")
    assert JobCreate.model_validate(payload).hyperparameters.epochs == 3  # text -> numbers
    for form in ({"epochs": "9" * 50_000}, {"epochs": "three"}, {"rho": "true"}):
        payload = job_payload({"model": "m", "rho_type": "fixed", "rho": "0.5", **form}, "ds_x")
        with pytest.raises(Exception) as caught:
            JobCreate.model_validate(payload)
        assert type(caught.value).__name__ == "ValidationError"


@contextmanager
def read_only(directory: Path) -> Iterator[Path]:
    """``directory`` on a read-only tmpfs (root ignores file modes), unmounted on exit."""
    directory.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs",
                              str(directory)], capture_output=True, text=True)
    require(mounted.returncode == 0, f"mount -t tmpfs -o ro (it said: {mounted.stderr.strip()})")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=True)


@pytest.mark.parametrize("where", ["blobs", "blobs/datasets"])
def test_an_upload_to_a_store_that_is_not_writable_is_503_and_leaves_nothing(
        tmp_path: Path, where: str) -> None:
    import os

    require(os.geteuid() == 0, "root, to mount a read-only tmpfs")
    with live_api(tmp_path) as api:
        team = api.new_team()
        blobs = Path(api.settings.data_dir) / "blobs"
        blobs.mkdir(parents=True, exist_ok=True)
        with read_only(Path(api.settings.data_dir) / where):
            r = api.client.post("/datasets", files={"file": (
                "d.jsonl", b'{"source": "a", "target": "b"}\n')}, headers=team)
            assert r.status_code == 503, r.text[:300]
            assert r.json()["error"]["code"] == "storage_unavailable"
            assert int(r.headers["Retry-After"]) >= 1
            assert str(blobs) not in r.text
            assert [p.name for p in blobs.rglob(".upload-*")] == []
