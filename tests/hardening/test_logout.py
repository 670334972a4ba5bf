"""Fault class: a session ended only in the browser. Logout once only replaced the browser's
cookie: a copy taken before (a shared machine, a proxy log) stayed signed in for 12 hours. The
session is now ended on the server, and every copy of its cookie is refused."""

from __future__ import annotations

import re
from contextlib import closing

import httpx

from tests.service.conftest import Api


def _signed_in(api: Api, key: str) -> httpx.Client:
    client = httpx.Client(base_url=str(api.client.base_url), timeout=30)
    page = client.get("/dashboard/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf, page.text[:300]
    r = client.post("/dashboard/login", data={"csrf_token": csrf.group(1), "api_key": key},
                    follow_redirects=False)
    assert r.status_code == 303, r.text[:300]
    return client


def _csrf(client: httpx.Client) -> str:
    page = client.get("/dashboard/jobs")
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text[:300]
    return found.group(1)


def test_logout_ends_the_session_for_every_copy_of_its_cookie(hard_api: Api) -> None:
    key = hard_api.new_team()["Authorization"].removeprefix("Bearer ")
    with closing(_signed_in(hard_api, key)) as browser, \
            closing(httpx.Client(base_url=str(hard_api.client.base_url), timeout=30)) as thief:
        thief.cookies.update(browser.cookies)  # a copy of the signed cookie, taken before
        assert thief.get("/dashboard/jobs", follow_redirects=False).status_code == 200
        r = browser.post("/dashboard/logout", data={"csrf_token": _csrf(browser)},
                         follow_redirects=False)
        assert r.status_code == 303
        r = thief.get("/dashboard/jobs", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].endswith("/login")
    with closing(_signed_in(hard_api, key)) as again:  # a new sign-in works as before
        assert again.get("/dashboard/jobs", follow_redirects=False).status_code == 200
