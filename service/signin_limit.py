"""Rate limiting of failed sign-ins, per client address (a token bucket).

Each wrong API key presented (API bearer auth or the dashboard's sign-in form) takes one token
from the caller's bucket; the bucket holds ``burst`` tokens and regains one every
``refill_seconds``. An address whose bucket is empty is answered 429 with ``Retry-After`` before
its key is even looked at, so guessing keys costs at least ``refill_seconds`` per guess. Buckets
live in the process (one API process per host; several processes each allow a burst).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from service.errors import TooManyFailedSignIns

MAX_TRACKED_ADDRESSES = 100_000  # full buckets are forgotten beyond this many


@dataclass
class _Bucket:
    tokens: float
    at: float


class FailedSignInLimiter:
    """Counts failed sign-ins per address; `check` raises `TooManyFailedSignIns` when exhausted."""

    def __init__(self, *, burst: int, refill_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if burst < 1 or refill_seconds <= 0:
            raise ValueError("burst must be >= 1 and refill_seconds > 0")
        self.burst = burst
        self.refill_seconds = refill_seconds
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def _current(self, address: str, now: float) -> _Bucket:
        bucket = self._buckets.get(address)
        if bucket is None:
            return _Bucket(tokens=float(self.burst), at=now)
        regained = (now - bucket.at) / self.refill_seconds
        return _Bucket(tokens=min(float(self.burst), bucket.tokens + regained), at=now)

    def check(self, address: str) -> None:
        """Raise `TooManyFailedSignIns` (with the seconds to wait) if ``address`` has no token."""
        with self._lock:
            bucket = self._current(address, self._clock())
        if bucket.tokens < 1:
            wait = math.ceil((1 - bucket.tokens) * self.refill_seconds)
            raise TooManyFailedSignIns(
                f"too many failed sign-ins from this address; retry in {wait} s",
                retry_after_s=max(wait, 1))

    def failed(self, address: str) -> None:
        """Record one failed sign-in from ``address``."""
        with self._lock:
            now = self._clock()
            bucket = self._current(address, now)
            bucket.tokens = max(0.0, bucket.tokens - 1)
            self._buckets[address] = bucket
            if len(self._buckets) > MAX_TRACKED_ADDRESSES:
                self._forget_full(now)

    def _forget_full(self, now: float) -> None:
        for address in list(self._buckets):
            if self._current(address, now).tokens >= self.burst:
                del self._buckets[address]
