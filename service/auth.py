"""API keys and the one access rule of the service.

A request carries ``Authorization: Bearer <key>``. Keys are stored as SHA-256 digests. A team key
sees only its own team's objects: `owned` answers 404 (never 403) for another team's object so
that ids do not leak. Admin keys (stored in the DB, or GREENTRAINER_ADMIN_KEY) manage teams.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import Row, bindparam, literal_column, select, true
from sqlalchemy.orm import Session

from service.errors import Forbidden, NotAuthenticated, NotFound
from service.models import ApiKey, new_id
from service.signin_limit import BUCKET, FailedSignInLimiter, bucket_params

KEY_PREFIX = "gt_"

# Built once: a statement built per request costs more CPU than its round trip.
_keys = ApiKey.__table__
_KEY = select(_keys.c.id.label("key_id"), _keys.c.team_id, _keys.c.is_admin,
              _keys.c.revoked_at).where(_keys.c.key_sha256 == bindparam("key_sha256"))
# One row whether or not the key and the bucket exist (NULLs where not):
# (SELECT 1) LEFT JOIN (the key) ON true LEFT JOIN (the address's bucket) ON true.
_key, _bucket = _KEY.subquery("api_key"), BUCKET.subquery("bucket")
_KEY_AND_BUCKET = select(_key, _bucket).select_from(
    select(literal_column("1").label("one")).subquery("anchor")
    .outerjoin(_key, true()).outerjoin(_bucket, true()))


@dataclass(frozen=True)
class Principal:
    """Who is calling: a team (``team_id``) or an admin (``is_admin``, no team)."""

    team_id: str | None
    is_admin: bool
    key_id: str | None = None

    def require_team(self) -> str:
        if self.team_id is None:
            raise Forbidden("this endpoint needs a team API key, not an admin key",
                            field="Authorization")
        return self.team_id

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden("this endpoint needs an admin API key", field="Authorization")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def create_api_key(session: Session, *, team_id: str | None,
                   is_admin: bool = False) -> tuple[ApiKey, str]:
    """Store a new key's hash; returns the row and the plain key (shown to the caller once)."""
    key = generate_key()
    row = ApiKey(id=new_id("key"), team_id=team_id, key_sha256=hash_key(key),
                 prefix=key[:10], is_admin=is_admin)
    session.add(row)
    session.flush()
    return row, key


def parse_bearer(header: str | None) -> str:
    if not header:
        raise NotAuthenticated(
            "missing Authorization header: send `Authorization: Bearer <api key>`",
            field="Authorization")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("Authorization header must be `Bearer <api key>`",
                               field="Authorization")
    return token.strip()


def authenticate(session: Session, key: str, *, admin_key: str | None,
                 limiter: FailedSignInLimiter | None = None, address: str = "") -> Principal:
    """The principal for ``key``; raises `NotAuthenticated` for an unknown or revoked key.

    With a ``limiter``, ``address``'s failed sign-in bucket is read in the same statement as
    the key and checked first: `TooManyFailedSignIns` whatever the key (one round trip per
    request instead of two; the key is still looked up on every request, so a revoked key
    is refused at once)."""
    params = {"key_sha256": hash_key(key)}
    row: Row | None = None
    if limiter is not None:
        row = session.execute(_KEY_AND_BUCKET, {**params, **bucket_params(address)}).one()
        limiter.check_tokens(limiter.tokens_in(row.tokens, row.updated_at))
    if admin_key and hmac.compare_digest(key.encode(), admin_key.encode()):
        return Principal(team_id=None, is_admin=True)
    if limiter is None:
        row = session.execute(_KEY, params).first()
    if row is None or row.key_id is None or row.revoked_at is not None:
        raise NotAuthenticated("unknown or revoked API key", field="Authorization")
    return Principal(team_id=row.team_id, is_admin=row.is_admin, key_id=row.key_id)


T = TypeVar("T")


def owned(session: Session, model: type[T], object_id: str, principal: Principal) -> T:
    """Load ``model`` by id if the principal may see it, else raise `NotFound` (same message
    for "missing" and "another team's", so ids do not leak). Admins see every object."""
    row = session.get(model, object_id)
    team_id = getattr(row, "team_id", None) if row is not None else None
    if row is None or (not principal.is_admin and team_id != principal.team_id):
        raise NotFound(f"no {model.__name__.lower()} with id {object_id!r}", field="id")
    return row
