"""benchmarks/chaos.py, short: 90 s of submissions from 5 teams while a worker, the scheduler,
Postgres and Redis are each SIGKILLed (or stopped -m immediate) and restarted; after the drain
every job has ended, no epoch counts twice, no 500, the API's memory is flat (about 2.5 minutes)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import require
from tests.hardening.private_services import postgres_available, redis_available

ROOT = Path(__file__).resolve().parents[2]


def test_short_chaos_run_keeps_every_invariant(tmp_path: Path) -> None:
    require(postgres_available(), "Postgres 15 binaries (/usr/lib/postgresql/15/bin)")
    require(redis_available(), "redis-server binary")
    out = tmp_path / "chaos"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "chaos.py"), "--minutes", "1.5", "--seed", "3",
         "--kill-min", "5", "--kill-max", "9", "--pg-down-max", "8", "--redis-down-max", "5",
         "--job-interval", "4", "--sample", "5", "--drain-minutes", "2", "--out", str(out)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=420, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    results = json.loads(out.with_suffix(".json").read_text())
    broken = [i for i in results["invariants"] if not i["held"]]
    assert broken == []
    killed = {e["component"] for e in results["events"] if e["action"] == "kill"}
    assert killed == {"worker", "scheduler", "postgres", "redis"}
    assert results["jobs_by_status"].get("succeeded", 0) >= 5
    # the run saw the outages it caused: Postgres down is answered 503, never 500
    assert any(k.endswith(" 503") for k in results["answers"])
    assert "| no 500 (a database outage is a 503) | yes |" in out.with_suffix(".md").read_text()
