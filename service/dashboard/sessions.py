"""Sign-in with a team's API key, kept as a signed session cookie, and CSRF tokens.

The cookie (HttpOnly, SameSite=Lax, signed with itsdangerous, expiring) holds the API key's id,
never the key: every request re-reads the key row, so a revoked key signs the browser out at
once. The environment admin key (no row) is held as a keyed digest of the key, so changing
GREENTRAINER_ADMIN_KEY ends those sessions. Every session, signed in or not, carries a random
CSRF token that each form POST must echo (``csrf_token`` field or ``X-CSRF-Token`` header).
A signed-in session has an id (``sid``); signing out records it in ``ended_sessions``
(`end_session`), so a copy of the cookie taken before is refused too, not only the browser's.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete
from sqlalchemy.orm import Session

from service.auth import Principal, authenticate
from service.errors import Forbidden, NotAuthenticated
from service.models import ApiKey, EndedSession, utcnow
from service.signin_limit import FailedSignInLimiter

COOKIE_NAME = "gt_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
_ENV_ADMIN = "env-admin"


@dataclass
class WebSession:
    """What the cookie holds: the CSRF token and, when signed in, the key's id (or env admin)."""

    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    key_id: str | None = None
    admin_digest: str | None = None
    sid: str | None = None  # set at sign-in; ended on the server by `end_session`

    def to_dict(self) -> dict[str, Any]:
        return {"csrf": self.csrf, "key_id": self.key_id, "admin_digest": self.admin_digest,
                "sid": self.sid}


class SessionCodec:
    """Signs and reads the session cookie."""

    def __init__(self, secret: str, *, max_age_s: int, secure: bool) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="greentrainer-dashboard")
        self._secret = secret.encode()
        self.max_age_s = max_age_s
        self.secure = secure

    def read(self, request: Request) -> WebSession:
        """The request's session; a missing, forged or expired cookie gives a fresh one."""
        raw = request.cookies.get(COOKIE_NAME)
        if raw:
            try:
                data = self._serializer.loads(raw, max_age=self.max_age_s)
                if isinstance(data, dict) and isinstance(data.get("csrf"), str):
                    return WebSession(csrf=data["csrf"], key_id=data.get("key_id"),
                                      admin_digest=data.get("admin_digest"),
                                      sid=data.get("sid"))
            except BadSignature:
                pass
        return WebSession()

    def write(self, response: Response, web: WebSession) -> None:
        response.set_cookie(COOKIE_NAME, self._serializer.dumps(web.to_dict()),
                            max_age=self.max_age_s, httponly=True, samesite="lax",
                            secure=self.secure, path="/")

    def admin_digest(self, admin_key: str) -> str:
        return hmac.new(self._secret, admin_key.encode(), hashlib.sha256).hexdigest()


def sign_in(session: Session, codec: SessionCodec, key: str, *, admin_key: str | None,
            limiter: FailedSignInLimiter | None = None,
            address: str = "") -> tuple[WebSession, Principal]:
    """A new signed-in session (new CSRF token) for ``key``; raises `NotAuthenticated`, or
    `TooManyFailedSignIns` (`authenticate` records the failure with a ``limiter``)."""
    principal = authenticate(session, key.strip(), admin_key=admin_key, limiter=limiter,
                             address=address)
    web = WebSession(sid=secrets.token_urlsafe(24))
    if principal.key_id is None:
        web.key_id, web.admin_digest = _ENV_ADMIN, codec.admin_digest(key.strip())
    else:
        web.key_id = principal.key_id
    return web, principal


def principal_of(session: Session, codec: SessionCodec, web: WebSession, *,
                 admin_key: str | None) -> Principal | None:
    """Who the session is signed in as, or None (signed out here or anywhere else, key revoked,
    admin key changed). A session without an id (a cookie from before sessions had one) is
    signed out: it could not be ended on the server."""
    if web.key_id is None or not isinstance(web.sid, str):
        return None
    if session.get(EndedSession, web.sid) is not None:
        return None
    if web.key_id == _ENV_ADMIN:
        if admin_key and web.admin_digest and hmac.compare_digest(
                web.admin_digest, codec.admin_digest(admin_key)):
            return Principal(team_id=None, is_admin=True)
        return None
    row = session.get(ApiKey, web.key_id)
    if row is None or row.revoked_at is not None:
        return None
    return Principal(team_id=row.team_id, is_admin=row.is_admin, key_id=row.id)


def end_session(session: Session, web: WebSession, max_age_s: int) -> None:
    """Sign ``web`` out on the server (commits); rows of sessions expired anyway are pruned."""
    now = utcnow()
    session.execute(delete(EndedSession).where(EndedSession.expires_at < now))
    if isinstance(web.sid, str) and session.get(EndedSession, web.sid) is None:
        session.add(EndedSession(sid=web.sid[:64],
                                 expires_at=now + timedelta(seconds=max_age_s)))
    session.commit()


def check_csrf(web: WebSession, submitted: str | None) -> None:
    """Raise `Forbidden` unless ``submitted`` equals the session's CSRF token."""
    if not submitted or not hmac.compare_digest(submitted.encode(), web.csrf.encode()):
        raise Forbidden("the form's CSRF token is missing or stale: reload the page and retry",
                        field=CSRF_FIELD)


def require_principal(principal: Principal | None) -> Principal:
    if principal is None:
        raise NotAuthenticated("sign in with your team's API key", field="session")
    return principal
