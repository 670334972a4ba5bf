"""Sign-in, session cookie, CSRF and team isolation of the dashboard, over real HTTP."""

from __future__ import annotations

import httpx

from tests.dashboard.conftest import Site
from tests.dashboard.helpers import api_job, csrf_of, signed_in_client


def test_pages_redirect_to_sign_in_without_a_session(site: Site) -> None:
    for path in ("/dashboard", "/dashboard/jobs", "/dashboard/jobs/job_x"):
        r = site.client.get(path)
        assert r.status_code == 303 and r.headers["location"] == "/dashboard/login", path


def test_sign_in_sets_a_signed_httponly_samesite_cookie_without_the_key(site: Site) -> None:
    _, key = site.new_team()
    with httpx.Client(base_url=site.base_url) as client:
        token = csrf_of(client.get("/dashboard/login").text)
        r = client.post("/dashboard/login", data={"api_key": key, "csrf_token": token})
        assert r.status_code == 303
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie
        assert key not in cookie and key[3:20] not in cookie
        assert client.get("/dashboard").status_code == 200


def test_wrong_key_is_refused_with_the_api_message(site: Site) -> None:
    with httpx.Client(base_url=site.base_url) as client:
        token = csrf_of(client.get("/dashboard/login").text)
        r = client.post("/dashboard/login", data={"api_key": "gt_nope", "csrf_token": token})
        assert r.status_code == 401 and "unknown or revoked API key" in r.text


def test_form_posts_without_the_session_csrf_token_are_refused(site: Site) -> None:
    _, key = site.new_team()
    with signed_in_client(site, key) as (client, token):
        for data in ({}, {"csrf_token": "forged"}):
            r = client.post("/dashboard/logout", data=data)
            assert r.status_code == 403 and "CSRF" in r.json()["error"]["message"]
            r = client.post("/dashboard/jobs", data={**data, "model": "x"})
            assert r.status_code == 403
        # Another browser's valid token does not work in this session either.
        with httpx.Client(base_url=site.base_url) as other:
            foreign = csrf_of(other.get("/dashboard/login").text)
        assert foreign != token
        assert client.post("/dashboard/logout", data={"csrf_token": foreign}).status_code == 403
        assert client.get("/dashboard").status_code == 200  # still signed in
        r = client.post("/dashboard/logout", data={"csrf_token": token})
        assert r.status_code == 303
        assert client.get("/dashboard").status_code == 303  # signed out


def test_a_forged_cookie_is_a_signed_out_session(site: Site) -> None:
    _, key = site.new_team()
    with signed_in_client(site, key) as (client, _):
        value = client.cookies["gt_session"]
        client.cookies.set("gt_session", value[:-3] + ("AAA" if value[-3:] != "AAA" else "BBB"))
        assert client.get("/dashboard").status_code == 303


def test_revoking_the_key_ends_its_sessions(site: Site) -> None:
    team_id, _ = site.new_team()
    r = site.client.post(f"/teams/{team_id}/keys", headers=site.admin_headers)
    assert r.status_code == 201, r.text
    created = r.json()
    with signed_in_client(site, created["key"]) as (client, _):
        assert client.get("/dashboard").status_code == 200
        r = site.client.delete(f"/teams/{team_id}/keys/{created['id']}", headers=site.admin_headers)
        assert r.status_code in (200, 204), r.text
        assert client.get("/dashboard").status_code == 303


def test_a_team_cannot_see_another_teams_job(site: Site) -> None:
    _, key_a = site.new_team()
    _, key_b = site.new_team()
    job_a = api_job(site, key_a)
    with signed_in_client(site, key_b) as (client, token):
        page = client.get(f"/dashboard/jobs/{job_a}")
        missing = client.get("/dashboard/jobs/job_00000000000000000000000000000")
        assert page.status_code == 404 and missing.status_code == 404
        assert job_a in page.text  # the same message as for a missing id, naming the asked id
        assert client.get(f"/dashboard/jobs/{job_a}/fragment").status_code == 404
        assert client.post(f"/dashboard/jobs/{job_a}/cancel",
                           data={"csrf_token": token}).status_code == 404
        listed = client.get("/dashboard/api/jobs").json()["data"]
        assert job_a not in [j["id"] for j in listed]
    with signed_in_client(site, key_a) as (client_a, _):
        assert client_a.get(f"/dashboard/jobs/{job_a}").status_code == 200


def test_user_text_is_escaped_in_pages(site: Site) -> None:
    _, key = site.new_team()
    hostile = "<img src=x onerror=alert(1)>"
    r = site.client.post("/datasets", files={"file": ("d.jsonl", b'{"source": "a", "target": "b"}')},
                         data={"name": hostile}, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 201, r.text
    with signed_in_client(site, key) as (client, _):
        html = client.get("/dashboard/jobs").text
        assert hostile not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
