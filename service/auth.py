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

from sqlalchemy import Row, bindparam, exists, literal_column, select, true
from sqlalchemy.orm import Session

from service.errors import Forbidden, NotAuthenticated, NotFound
from service.models import ApiKey, SignInFailure, new_id
from service.signin_limit import (
    BUCKET,
    PREFIX_CHARS,
    FailedSignInLimiter,
    bucket_params,
    prefix_bucket,
)

KEY_PREFIX = "gt_"

# Built once: a statement built per request costs more CPU than its round trip.
_keys = ApiKey.__table__
_KEY = select(_keys.c.id.label("key_id"), _keys.c.team_id, _keys.c.is_admin,
              _keys.c.revoked_at).where(_keys.c.key_sha256 == bindparam("key_sha256"))
# One row whether or not the key and the buckets exist (NULLs where not): (SELECT 1) LEFT JOIN
# (the key) LEFT JOIN (the address's bucket) LEFT JOIN (the key prefix's bucket), all ON true,
# and whether any stored key has the presented key's prefix.
_failures = SignInFailure.__table__
_PREFIX_BUCKET = select(_failures.c.tokens.label("prefix_tokens"),
                        _failures.c.updated_at.label("prefix_updated_at")).where(
    _failures.c.address == bindparam("prefix_bucket"))
_key, _bucket = _KEY.subquery("api_key"), BUCKET.subquery("bucket")
_prefix = _PREFIX_BUCKET.subquery("prefix_bucket")
_KEY_AND_BUCKETS = select(
    _key, _bucket, _prefix,
    exists().where(_keys.c.prefix == bindparam("prefix")).label("known_prefix"),
).select_from(select(literal_column("1").label("one")).subquery("anchor")
              .outerjoin(_key, true()).outerjoin(_bucket, true()).outerjoin(_prefix, true()))


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

    With a ``limiter`` (one statement reads the key and both buckets): a valid key is accepted
    unless its prefix's bucket is empty; a wrong one is recorded against ``address`` and, when
    its prefix is a real key's, that prefix (`service.signin_limit`), and is answered
    `TooManyFailedSignIns` instead of `NotAuthenticated` when ``address``'s bucket was empty."""
    params = {"key_sha256": hash_key(key)}
    is_env_admin = bool(admin_key) and hmac.compare_digest(key.encode(), str(admin_key).encode())
    if limiter is None:
        if is_env_admin:
            return Principal(team_id=None, is_admin=True)
        return _principal(session.execute(_KEY, params).first())
    row = session.execute(_KEY_AND_BUCKETS, {
        **params, **bucket_params(address), "prefix_bucket": prefix_bucket(key),
        "prefix": key[:PREFIX_CHARS]}).one()
    prefix_tokens = limiter.tokens_in(row.prefix_tokens, row.prefix_updated_at)
    valid = is_env_admin or (row.key_id is not None and row.revoked_at is None)
    if valid:
        limiter.check_tokens(prefix_tokens, "for this key")
        return Principal(team_id=None, is_admin=True) if is_env_admin else _principal(row)
    known = bool(row.known_prefix) or bool(admin_key) and \
        key[:PREFIX_CHARS] == str(admin_key)[:PREFIX_CHARS]
    address_tokens = limiter.tokens_in(row.tokens, row.updated_at)
    if address_tokens >= 1:
        limiter.failed(session, address, *([prefix_bucket(key)] if known else []))
    elif known:  # guesses at a known prefix count even from an address already refused
        limiter.failed(session, prefix_bucket(key))
    limiter.check_tokens(address_tokens, "from this address")
    raise NotAuthenticated("unknown or revoked API key", field="Authorization")


def _principal(row: Row | None) -> Principal:
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
