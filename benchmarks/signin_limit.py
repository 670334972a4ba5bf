"""What the shared failed sign-in limit costs: the time of one `check` (the read every API request
with a key now makes) and of one `failed` (the upsert a wrong key makes), on SQLite and on a
fresh Postgres database, measured in-process (no HTTP) over --calls calls each.

`check` is timed for an address with no row (every well-behaved client) and for one with a
row; `failed` for one address (its row updated every time) and for --calls new addresses
(a row inserted every time).

    python3 benchmarks/signin_limit.py               # 2,000 calls per figure
    python3 benchmarks/signin_limit.py --calls 500   # a quick run
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from load_jobs import create_database, drop_database, percentile  # noqa: E402  (benchmarks/ is not a package)

from service.db import make_engine, make_session_factory, upgrade  # noqa: E402
from service.signin_limit import FailedSignInLimiter  # noqa: E402


def _timed_ms(calls: int, call: Callable[[int], None]) -> list[float]:
    times = []
    for index in range(calls):
        start = time.perf_counter()
        call(index)
        times.append((time.perf_counter() - start) * 1000)
    return times


def measure(database_url: str, calls: int) -> dict[str, list[float]]:
    upgrade(database_url)
    engine = make_engine(database_url)
    # A burst no test of this size exhausts: `check` must read, never raise.
    limiter = FailedSignInLimiter(burst=10 * calls, refill_seconds=3.0)
    try:
        with make_session_factory(engine)() as session:
            limiter.failed(session, "198.51.100.1")
            return {
                "check, no row": _timed_ms(calls, lambda i: limiter.check(session, f"192.0.2.{i % 250}")),
                "check, a row": _timed_ms(calls, lambda i: limiter.check(session, "198.51.100.1")),
                "failed, same address": _timed_ms(calls, lambda i: limiter.failed(session, "198.51.100.1")),
                "failed, new address": _timed_ms(calls, lambda i: limiter.failed(session, f"10.1.{i // 256}.{i % 256}")),
            }
    finally:
        engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000, help="calls per figure")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        rows.append(("SQLite", measure(f"sqlite:///{folder}/limit.sqlite", args.calls)))
    name, url = create_database()
    try:
        rows.append(("Postgres", measure(url, args.calls)))
    finally:
        drop_database(name)
    print(f"| backend | operation | p50 ms | p99 ms | max ms |  ({args.calls} calls each)")
    print("|---|---|---|---|---|")
    for backend, figures in rows:
        for operation, times in figures.items():
            print(
                f"| {backend} | {operation} | {percentile(times, 0.5):.3f} | {percentile(times, 0.99):.3f} | {max(times):.3f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
