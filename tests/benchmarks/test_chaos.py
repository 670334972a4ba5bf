"""benchmarks/chaos.py, short: 90 s of submissions from 5 teams while a worker, the scheduler,
Postgres and Redis are each SIGKILLed (or stopped -m immediate) and restarted; after the drain
every job has ended, no epoch counts twice, no 500, the API's memory is flat (about 2.5 minutes)."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import require
from tests.hardening.private_services import postgres_available, redis_available

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))


@pytest.mark.slow
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


def _job(session: Any, team: str, dataset: str, status: str, epochs: int,
         result: dict[str, Any] | None = None) -> str:
    from service.models import Job

    job = Job(id=f"job_{secrets.token_hex(8)}", team_id=team, status=status, model="tiny",
              model_source="local", method="greentrainer", hyperparameters={"epochs": epochs},
              rho_policy={"type": "fixed", "rho": 0.7}, training_dataset_id=dataset,
              result=result)
    session.add(job)
    session.flush()
    return job.id


def _epoch(session: Any, job_id: str, index: int, kg_co2: float) -> None:
    from service.models import JobEpoch

    session.add(JobEpoch(job_id=job_id, epoch_index=index, rho=0.7, selected_tensor_count=1,
                         selected_tensor_names=["w"], predicted_flops=1.0, executed_flops=1.0,
                         full_ft_flops=2.0, wall_seconds=1.0, energy_kwh=0.5,
                         kg_co2=kg_co2))
    session.flush()


def _totals(epochs: int, kg: float) -> dict[str, Any]:
    return {"epochs": epochs, "executed_flops": float(epochs), "full_ft_flops": 2.0 * epochs,
            "energy_kwh": 0.5 * epochs, "kg_co2": kg}


def test_the_checks_catch_a_stuck_job_a_missing_epoch_and_totals_counted_twice() -> None:
    """The run's checks against a database made by hand: clean at first, then broken in each
    way they look for."""
    from chaos_checks import _epoch_checks, unfinished

    from service.db import make_engine, make_session_factory, upgrade
    from service.models import Dataset, Team
    from tests.service.conftest import PostgresDatabases, _pg_admin_url

    admin = _pg_admin_url()
    require(admin is not None, "Postgres on 127.0.0.1:5432 (database `test`)")
    assert admin is not None
    databases = PostgresDatabases(admin)
    url = databases.create()
    engine = make_engine(url)
    try:
        upgrade(url)
        with make_session_factory(engine)() as session, session.begin():
            session.add(Team(id="team_chaos", name="chaos"))
            session.flush()  # no ORM relationship orders the data set after its team
            session.add(Dataset(id="ds_chaos", team_id="team_chaos", name="d", format="jsonl",
                                sha256="0" * 64, size_bytes=1, row_count=1, source_field="s",
                                target_field="t", storage_key="k"))
            good = _job(session, "team_chaos", "ds_chaos", "succeeded", 2, _totals(2, 0.3))
            _epoch(session, good, 0, 0.1)
            _epoch(session, good, 1, 0.2)
        with psycopg.connect(url.replace("+psycopg", "")) as conn:
            assert [c["held"] for c in _epoch_checks(conn)] == [True] * 4
        assert unfinished(url) == []

        with make_session_factory(engine)() as session, session.begin():
            short = _job(session, "team_chaos", "ds_chaos", "succeeded", 2, _totals(1, 0.1))
            _epoch(session, short, 0, 0.1)  # epoch 1 never recorded
            twice = _job(session, "team_chaos", "ds_chaos", "succeeded", 1, _totals(1, 0.8))
            _epoch(session, twice, 0, 0.4)  # the result counts the epoch's CO2 twice
            stuck = _job(session, "team_chaos", "ds_chaos", "running", 1)
        with psycopg.connect(url.replace("+psycopg", "")) as conn:
            conn.execute("UPDATE team_month_co2 SET kg_co2 = kg_co2 * 2")
            checks = {c["name"]: c for c in _epoch_checks(conn)}
        assert unfinished(url) == [(stuck, "running")]
        held = {name: c["held"] for name, c in checks.items()}
        assert held == {"no epoch recorded twice (unique job + epoch index)": True,
                        "every succeeded job has each of its epochs exactly once": False,
                        "a job's FLOPs / energy / CO2 totals equal the sum of its distinct epochs": False,
                        "each team's monthly CO2 total equals the sum of its epochs": False}
        assert short in checks["every succeeded job has each of its epochs exactly once"]["detail"]
        assert twice in checks["a job's FLOPs / energy / CO2 totals equal the sum of its distinct epochs"]["detail"]
    finally:
        engine.dispose()
        databases.drop_all()
