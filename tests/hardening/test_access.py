"""Every route of the app (enumerated from the app, so a new route cannot be forgotten) with no
key, a wrong key, a revoked key and another team's key: 401 for the first three, and another
team's objects stay invisible (404, never their data). Keys are stored hashed and never appear
in logs or error bodies."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from sqlalchemy import select

from service.job_records import register_artifact
from service.models import ApiKey, Job
from tests.service.conftest import ADMIN_KEY, Api

# Routes anyone may call. Every other route must refuse a request that is not signed in.
PUBLIC = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"), ("GET", "/"),
          ("GET", "/dashboard/login"), ("POST", "/dashboard/login"),
          ("POST", "/dashboard/logout")}
WRONG_KEY = "gt_" + "x" * 43


def app_routes(app: Any) -> list[tuple[str, str]]:
    """(method, path template) of every API route and dashboard page the app serves."""
    def walk(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
        for route in routes:
            if hasattr(route, "original_router"):  # FastAPI's included routers (nested: /v1)
                inner = prefix + (getattr(route.include_context, "prefix", "") or "")
                yield from walk(route.original_router.routes, inner)
            else:
                yield prefix, route
    found = {(method, prefix + route.path) for prefix, route in walk(app.routes)
             if isinstance(route, APIRoute) for method in (route.methods or ()) if method != "HEAD"}
    return sorted(found)


@dataclass
class World:
    owner: dict[str, str]
    intruder: dict[str, str]
    revoked: dict[str, str]
    ids: dict[str, str]
    secrets: list[str]

    def fill(self, path: str) -> str:
        return re.sub(r"\{(\w+)\}", lambda m: self.ids[m.group(1)], path)


@pytest.fixture(scope="module")
def world(hard_api: Api, tmp_path_factory: pytest.TempPathFactory) -> World:
    api = hard_api
    owner, intruder = api.new_team(), api.new_team()
    dataset = api.upload(owner)
    job_id = api.job_id(owner, dataset=dataset)
    artifact = tmp_path_factory.mktemp("artifact") / "adapter.safetensors"
    artifact.write_bytes(b"weights")
    with api.factory() as session:
        row = register_artifact(session, api.app_store(), session.get_one(Job, job_id), artifact,
                                kind="delta")
        session.commit()
        artifact_id = row.id
    r = api.client.post(f"/teams/{owner['X-Team-Id']}/keys", headers=api.admin)
    assert r.status_code == 201, r.text
    revoked_key = r.json()
    r = api.client.delete(f"/teams/{owner['X-Team-Id']}/keys/{revoked_key['id']}",
                          headers=api.admin)
    assert r.status_code == 204, r.text
    # A public address literal: nothing is resolved or sent while the routes are probed.
    r = api.client.post("/webhooks", json={"url": "https://93.184.216.34/hook"}, headers=owner)
    assert r.status_code == 201, r.text
    ids = {"job_id": job_id, "dataset_id": dataset, "file_id": dataset, "artifact_id": artifact_id,
           "team_id": owner["X-Team-Id"], "key_id": revoked_key["id"],
           "webhook_id": r.json()["id"], "epoch_index": "0", "action": "pause"}
    keys = [h["Authorization"].removeprefix("Bearer ") for h in (owner, intruder)]
    return World(owner=owner, intruder=intruder,
                 revoked={"Authorization": f"Bearer {revoked_key['key']}"}, ids=ids,
                 secrets=[*keys, revoked_key["key"], ADMIN_KEY])


def _call(api: Api, method: str, path: str, headers: dict[str, str],
          world: World) -> Any:
    body = None
    if method in {"POST", "PATCH"} and path == "/jobs":
        body = {"model": "smollm2-135m-instruct", "training_dataset": world.ids["dataset_id"]}
    elif method in {"POST", "PATCH"}:
        body = {}
    return api.client.request(method, world.fill(path), json=body, headers=headers,
                              follow_redirects=False)


def _bad_callers(world: World) -> dict[str, dict[str, str]]:
    return {"no key": {}, "wrong key": {"Authorization": f"Bearer {WRONG_KEY}"},
            "revoked key": world.revoked, "not bearer": {"Authorization": f"Basic {WRONG_KEY}"}}


def test_route_list_covers_api_and_dashboard(hard_api: Api) -> None:
    routes = app_routes(hard_api.app)
    assert ("GET", "/jobs/{job_id}") in routes
    assert ("GET", "/dashboard/jobs/{job_id}") in routes
    assert len(routes) > 30


def test_every_private_route_refuses_callers_without_a_valid_key(
        hard_api: Api, world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    checked = 0
    for method, path in app_routes(hard_api.app):
        if (method, path) in PUBLIC:
            continue
        for who, headers in _bad_callers(world).items():
            r = _call(hard_api, method, path, headers, world)
            if path.startswith("/dashboard"):  # no session: sign-in page, 401 or CSRF refusal
                ok = (r.status_code in (401, 403)
                      or (r.status_code == 303 and r.headers["location"].endswith("/login")))
            else:
                ok = r.status_code == 401
            assert ok, (method, path, who, r.status_code, r.text[:300])
            assert world.ids["job_id"] not in r.text or path.count("{job_id}"), (method, path)
            for secret in world.secrets:
                assert secret not in r.text, (method, path, who)
            checked += 1
    assert checked >= 4 * 30
    logged = caplog.text
    assert WRONG_KEY not in logged and not any(s in logged for s in world.secrets)


def test_another_teams_key_sees_nothing_of_the_owner(hard_api: Api, world: World) -> None:
    owned_values = [world.ids[k] for k in ("job_id", "dataset_id", "artifact_id", "webhook_id")]
    for method, path in app_routes(hard_api.app):
        if (method, path) in PUBLIC or path.startswith("/dashboard"):
            continue
        r = _call(hard_api, method, path, world.intruder, world)
        if "{" in path or (method, path) == ("POST", "/jobs"):
            assert r.status_code in (403, 404, 422), (method, path, r.status_code, r.text)
        else:
            assert r.status_code < 500, (method, path, r.status_code, r.text)
        if r.status_code < 400 and "{" not in path:
            for value in owned_values:
                assert value not in r.text, (method, path)


def _dashboard_session(api: Api, headers: dict[str, str]) -> Any:
    import httpx
    client = httpx.Client(base_url=str(api.client.base_url), timeout=30)
    page = client.get("/dashboard/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf, page.text[:500]
    r = client.post("/dashboard/login", data={"csrf_token": csrf.group(1),
                    "api_key": headers["Authorization"].removeprefix("Bearer ")},
                    follow_redirects=False)
    assert r.status_code == 303, r.text[:300]
    return client


def test_another_teams_dashboard_session_sees_nothing_of_the_owner(
        hard_api: Api, world: World) -> None:
    client = _dashboard_session(hard_api, world.intruder)
    with closing(client):
        for method, path in app_routes(hard_api.app):
            if method != "GET" or not path.startswith("/dashboard"):
                continue
            r = client.get(world.fill(path), follow_redirects=False)
            if "{" in path:
                assert r.status_code == 404, (path, r.status_code)
            for value in (world.ids["job_id"], world.ids["dataset_id"]):
                assert value not in r.text or "{" in path and r.status_code == 404, path


def test_a_revoked_key_signs_the_dashboard_out(hard_api: Api, world: World) -> None:
    r = hard_api.client.post(f"/teams/{world.ids['team_id']}/keys", headers=hard_api.admin)
    key = r.json()
    client = _dashboard_session(hard_api, {"Authorization": f"Bearer {key['key']}"})
    with closing(client):
        assert client.get("/dashboard/jobs", follow_redirects=False).status_code == 200
        hard_api.client.delete(f"/teams/{world.ids['team_id']}/keys/{key['id']}",
                               headers=hard_api.admin)
        r = client.get("/dashboard/jobs", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].endswith("/login")


def test_keys_are_stored_only_as_sha256_digests(hard_api: Api, world: World) -> None:
    import hashlib
    with hard_api.factory() as session:
        rows = list(session.scalars(select(ApiKey)))
        dumped = " ".join(f"{r.id} {r.key_sha256} {r.prefix}" for r in rows)
    for secret in world.secrets[:3]:
        assert secret not in dumped
        assert hashlib.sha256(secret.encode()).hexdigest() in dumped


def test_keys_are_compared_in_constant_time(hard_api: Api, world: World,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The admin key (the only plain key the server holds) goes through hmac.compare_digest;
    team keys are never compared as text: the lookup is by SHA-256 digest."""
    import hmac

    import service.auth
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)
    monkeypatch.setattr(service.auth.hmac, "compare_digest", spy)
    r = hard_api.client.get("/me", headers=world.intruder)
    assert r.status_code == 200
    key = world.intruder["Authorization"].removeprefix("Bearer ").encode()
    assert calls and calls[0] == (key, ADMIN_KEY.encode())
    source = Path(service.auth.__file__).read_text()
    assert '_keys.c.key_sha256 == bindparam("key_sha256")' in source
    assert '{"key_sha256": hash_key(key)}' in source
