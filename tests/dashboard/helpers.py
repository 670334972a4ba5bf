"""HTTP helpers for the dashboard tests: sign in like a browser does (CSRF token from the page)."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.dashboard.conftest import Site

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "the page has no CSRF field"
    return match.group(1)


@contextmanager
def signed_in_client(site: Site, key: str) -> Iterator[tuple[httpx.Client, str]]:
    """A client holding a signed-in session cookie, and the session's CSRF token."""
    with httpx.Client(base_url=site.base_url, timeout=30) as client:
        token = csrf_of(client.get("/dashboard/login").text)
        r = client.post("/dashboard/login", data={"api_key": key, "csrf_token": token})
        assert r.status_code == 303, r.text
        yield client, csrf_of(client.get("/dashboard/jobs").text)


def upload(site: Site, key: str) -> str:
    rows = [{"source": f"q {i} {secrets.token_hex(3)}", "target": f"a {i}"} for i in range(4)]
    data = "\n".join(json.dumps(r) for r in rows).encode()
    r = site.client.post("/datasets", files={"file": ("train.jsonl", data)},
                         headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def api_job(site: Site, key: str, **body: object) -> str:
    payload = {"model": "smollm2-135m-instruct", "training_dataset": upload(site, key), **body}
    r = site.client.post("/jobs", json=payload, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])
