"""Fault class: trust of client-controlled headers, and missing browser defences. The Host
header was reflected in redirects (`/jobs/` -> `http://evil.example/jobs`), and dashboard pages
carried no security headers. Redirects are now relative, GREENTRAINER_ALLOWED_HOSTS refuses other
hosts, and every response carries CSP, frame, sniffing and referrer policies."""

from __future__ import annotations

from pathlib import Path

from service.response_guards import CONTENT_SECURITY_POLICY
from tests.hardening.conftest import live_api
from tests.service.conftest import Api


def test_a_forged_host_is_never_reflected_in_a_redirect(hard_api: Api) -> None:
    team = hard_api.new_team()
    for path in ("/jobs/", "/datasets/", "/dashboard"):
        r = hard_api.client.get(path, headers={**team, "Host": "evil.example"},
                                follow_redirects=False)
        assert 300 <= r.status_code < 400, (path, r.status_code)
        location = r.headers["location"]
        assert location.startswith("/") and not location.startswith("//"), location
        assert "evil.example" not in location


def test_dashboard_pages_and_api_answers_carry_security_headers(hard_api: Api) -> None:
    for path in ("/dashboard/login", "/healthz", "/jobs"):
        r = hard_api.client.get(path)
        assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "same-origin"


def test_with_allowed_hosts_another_host_is_400(tmp_path: Path) -> None:
    with live_api(tmp_path, allowed_hosts=["127.0.0.1", "gt.example.com"]) as api:
        assert api.client.get("/healthz").status_code == 200
        assert api.client.get("/healthz", headers={"Host": "gt.example.com"}).status_code == 200
        r = api.client.get("/healthz", headers={"Host": "evil.example"})
        assert r.status_code == 400


def test_the_served_api_does_not_trust_forwarded_headers_by_default() -> None:
    from greentrainer.serving import proxy_options

    assert proxy_options([]) == {"proxy_headers": False, "forwarded_allow_ips": ""}
    assert proxy_options(["10.0.0.1", "10.1.0.0/16"])["forwarded_allow_ips"] == \
        "10.0.0.1,10.1.0.0/16"
