"""Rate limiting of failed sign-ins, per client address and per key prefix (token buckets kept
in the database).

Each wrong API key presented (API bearer auth or the dashboard's sign-in form) takes one token
from the caller's address bucket, and, when its first `PREFIX_CHARS` characters are those of a
real key (shown in key listings), one from that prefix's bucket (``key:<prefix>``). A bucket
holds ``burst`` tokens and regains one every ``refill_seconds``. Only failures count:

- a valid key is accepted whatever its address's bucket holds (a neighbour guessing keys, or a
  forged address, no longer locks the admin out), unless its own prefix's bucket is empty;
- a wrong key from an address whose bucket is empty is answered 429 with ``Retry-After``, so
  guessing keys costs at least ``refill_seconds`` per guess per address; and guessing the rest
  of a known prefix costs as much per prefix, from however many addresses.

The address is the TCP peer's, or the forwarded client's only when the peer is a configured
proxy (GREENTRAINER_TRUSTED_PROXIES, `greentrainer.serving`): a client's own X-Forwarded-For is
never believed.

The buckets live in the ``signin_failures`` table, so every API process of a deployment (any
number of hosts, Postgres or SQLite) draws on the same bucket. A failed sign-in takes its token
in one ``INSERT ... ON CONFLICT DO UPDATE`` that computes the refill in the database, so two
processes failing at once for the same address cannot both take the last token. Only failed
sign-ins write; `check` is one primary-key read, and an address that never failed has no row.
Rows whose bucket is full again are deleted now and then by the process that records a failure.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Executable, bindparam, case, delete, func, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.errors import TooManyFailedSignIns
from service.models import SignInFailure, UTCDateTime

ADDRESS_MAX_CHARS = 255  # the column's width; a longer (proxy-supplied) address is cut
PREFIX_CHARS = 10  # ApiKey.prefix: what a key listing shows of a key


def prefix_bucket(key: str) -> str:
    """The bucket of the key prefix ``key`` starts with (never a client address)."""
    return "key:" + key[:PREFIX_CHARS]

# An address's bucket, built once (a statement built per request costs more CPU than its
# round trip); `service.auth` reads it in the same statement as the API key.
_failures = SignInFailure.__table__
BUCKET = select(_failures.c.tokens, _failures.c.updated_at).where(
    _failures.c.address == bindparam("address"))


def bucket_params(address: str) -> dict[str, str]:
    """The parameters of `BUCKET` for ``address``."""
    return {"address": address[:ADDRESS_MAX_CHARS]}


class FailedSignInLimiter:
    """Counts failed sign-ins per address in the database; `check` raises `TooManyFailedSignIns`
    when the address's bucket is empty. ``clock`` gives wall-clock seconds, shared by every API
    host (keep their clocks in step): a failure seen by a host whose clock runs behind the last
    one recorded refills nothing, never a negative amount."""

    def __init__(self, *, burst: int, refill_seconds: float, clock: Callable[[], float] = time.time) -> None:
        if burst < 1 or refill_seconds <= 0:
            raise ValueError("burst must be >= 1 and refill_seconds > 0")
        self.burst = burst
        self.refill_seconds = refill_seconds
        self._clock = clock
        self._last_sweep = -math.inf

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def tokens(self, session: Session, address: str) -> float:
        """The tokens ``address`` holds now (``burst`` when it has no recent failure)."""
        bucket = session.execute(BUCKET, bucket_params(address)).first()
        return self.tokens_in(*bucket) if bucket is not None else float(self.burst)

    def tokens_in(self, tokens: float | None, updated_at: datetime | None) -> float:
        """The tokens now in a bucket read with `BUCKET` (None: no recent failure)."""
        if tokens is None or updated_at is None:
            return float(self.burst)
        elapsed_s = max(0.0, (self._now() - updated_at).total_seconds())
        return min(float(self.burst), tokens + elapsed_s / self.refill_seconds)

    def check(self, session: Session, address: str) -> None:
        """Raise `TooManyFailedSignIns` (with the seconds to wait) if ``address`` has no token.
        One read; database errors propagate (the API answers them 503)."""
        self.check_tokens(self.tokens(session, address))

    def check_tokens(self, tokens: float, whose: str = "from this address") -> None:
        """`check` for tokens already read (`tokens_in`)."""
        if tokens < 1:
            wait = math.ceil((1 - tokens) * self.refill_seconds)
            raise TooManyFailedSignIns(
                f"too many failed sign-ins {whose}; retry in {wait} s", retry_after_s=max(wait, 1)
            )

    def failed(self, session: Session, *buckets: str) -> None:
        """Record one failed sign-in in each of ``buckets`` (the address, and the key prefix's
        when it is a real key's) and commit ``session`` (on the sign-in path it holds only the
        key lookup's read)."""
        now = self._now()
        for bucket in dict.fromkeys(buckets):
            session.execute(self._take_token(session, bucket[:ADDRESS_MAX_CHARS], now))
        session.commit()
        if (now.timestamp() - self._last_sweep) >= self._full_after_s:
            self._last_sweep = now.timestamp()
            self._forget_refilled(session, now)

    def _forget_refilled(self, session: Session, now: datetime) -> None:
        """Delete the rows of buckets that are full again, in a transaction of their own. Rows
        another transaction holds are skipped (Postgres ``SKIP LOCKED``), so two processes
        sweeping at once, or a sweep and a failure, never wait on each other in a cycle."""
        cutoff = datetime.fromtimestamp(now.timestamp() - self._full_after_s, UTC)
        stale = select(SignInFailure.address).where(SignInFailure.updated_at < cutoff).with_for_update(skip_locked=True)
        session.execute(delete(SignInFailure).where(SignInFailure.address.in_(stale)))
        session.commit()

    @property
    def _full_after_s(self) -> float:
        """Seconds without a failure after which any bucket is full again (its row can go)."""
        return self.burst * self.refill_seconds

    def _take_token(self, session: Session, address: str, now: datetime) -> Executable:
        """``INSERT ... ON CONFLICT (address) DO UPDATE``: a new row starts at ``burst - 1``; an
        existing one is refilled for the time since ``updated_at`` (capped at ``burst``), loses
        one token (floored at 0) and moves ``updated_at`` forward (never back)."""
        at = bindparam("now", now, type_=UTCDateTime())
        postgres = session.get_bind().dialect.name == "postgresql"
        elapsed_s: ColumnElement[Any]
        if postgres:
            elapsed_s = func.extract("epoch", at - SignInFailure.updated_at)
        else:  # SQLite keeps timestamps as ISO text, which julianday() reads
            elapsed_s = (func.julianday(at) - func.julianday(SignInFailure.updated_at)) * 86400.0
        refilled = _at_most(SignInFailure.tokens + _at_least(elapsed_s, 0.0) / self.refill_seconds, float(self.burst))
        values = {"address": address, "tokens": float(self.burst - 1), "updated_at": at}
        update = {
            "tokens": _at_least(refilled - 1.0, 0.0),
            "updated_at": case((SignInFailure.updated_at > at, SignInFailure.updated_at), else_=at),
        }
        if postgres:
            return postgresql.insert(SignInFailure).values(values).on_conflict_do_update(index_elements=["address"], set_=update)
        return sqlite.insert(SignInFailure).values(values).on_conflict_do_update(index_elements=["address"], set_=update)


def _at_least(value: ColumnElement[Any], floor: float) -> ColumnElement[Any]:
    # CASE rather than GREATEST/max(): the same SQL on Postgres and SQLite.
    return case((value < floor, literal(floor)), else_=value)


def _at_most(value: ColumnElement[Any], cap: float) -> ColumnElement[Any]:
    return case((value > cap, literal(cap)), else_=value)
