"""The invariants of a chaos run (benchmarks/chaos.py), read straight from the database and
through the API once the system has drained, and the report that states them."""

from __future__ import annotations

import argparse
import math
import os
import re
from collections import Counter
from typing import TYPE_CHECKING, Any

import httpx
import psycopg

if TYPE_CHECKING:
    from chaos import Traffic
    from chaos_system import System

TERMINAL = ("succeeded", "failed", "cancelled")


def _connect(database_url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(database_url.replace("+psycopg", ""), connect_timeout=5)


def unfinished(database_url: str) -> list[tuple[str, str]]:
    """(id, status) of every job not yet in a terminal status."""
    try:
        with _connect(database_url) as conn:
            return [(str(i), str(s)) for i, s in conn.execute(
                "SELECT id, status FROM jobs WHERE status <> ALL(%s)", (list(TERMINAL),))]
    except psycopg.OperationalError:
        return [("?", "database unreachable")]


def _close(a: float | None, b: float | None) -> bool:
    return math.isclose(a or 0.0, b or 0.0, rel_tol=1e-9, abs_tol=1e-12)


def _epoch_checks(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    twice = conn.execute("SELECT job_id, epoch_index, count(*) FROM job_epochs "
                         "GROUP BY job_id, epoch_index HAVING count(*) > 1").fetchall()
    jobs = conn.execute(
        "SELECT j.id, j.hyperparameters, j.result, array_agg(e.epoch_index ORDER BY e.epoch_index), "
        "sum(e.executed_flops), sum(e.full_ft_flops), sum(e.energy_kwh), sum(e.kg_co2) "
        "FROM jobs j JOIN job_epochs e ON e.job_id = j.id WHERE j.status = 'succeeded' "
        "GROUP BY j.id").fetchall()
    succeeded = conn.execute("SELECT count(*) FROM jobs WHERE status = 'succeeded'").fetchone()
    wrong_epochs, wrong_totals = [], []
    for job_id, hyper, result, indices, flops, full, kwh, kg in jobs:
        expected = list(range(int(hyper.get("epochs", 3))))
        if indices != expected and not (result or {}).get("stopped_early"):
            wrong_epochs.append(f"{job_id}: epochs {indices}, asked {len(expected)}")
        result = result or {}
        if result.get("epochs") != len(indices) or not all(
                _close(result.get(k), v) for k, v in (("executed_flops", flops),
                                                      ("full_ft_flops", full),
                                                      ("energy_kwh", kwh), ("kg_co2", kg))):
            wrong_totals.append(f"{job_id}: result {result.get('epochs')} epochs "
                                f"{result.get('executed_flops')} FLOPs {result.get('kg_co2')} kg, "
                                f"epochs {len(indices)} / {flops} / {kg}")
    months = conn.execute(
        "SELECT t.team_id, t.month, t.kg_co2, coalesce(s.kg, 0) FROM team_month_co2 t LEFT JOIN "
        "(SELECT j.team_id, to_char(e.created_at, 'YYYY-MM') AS month, sum(e.kg_co2) AS kg "
        " FROM job_epochs e JOIN jobs j ON j.id = e.job_id GROUP BY 1, 2) s "
        "ON s.team_id = t.team_id AND s.month = t.month").fetchall()
    wrong_months = [f"team {t} {m}: total {kg} kg, epochs {s} kg" for t, m, kg, s in months
                    if not _close(kg, s)]
    no_epochs = int(succeeded[0] if succeeded else 0) - len(jobs)
    return [
        {"name": "no epoch recorded twice (unique job + epoch index)", "held": not twice,
         "detail": f"{len(twice)} duplicated (job, epoch) pairs" + (f": {twice[:5]}" if twice else "")},
        {"name": "every succeeded job has each of its epochs exactly once",
         "held": not wrong_epochs and no_epochs == 0,
         "detail": f"{len(jobs)} succeeded jobs checked; {no_epochs} without epochs; "
                   + "; ".join(wrong_epochs[:5])},
        {"name": "a job's FLOPs / energy / CO2 totals equal the sum of its distinct epochs",
         "held": not wrong_totals, "detail": f"{len(wrong_totals)} differ; " + "; ".join(wrong_totals[:3])},
        {"name": "each team's monthly CO2 total equals the sum of its epochs", "held": not wrong_months,
         "detail": f"{len(months)} team-months; " + "; ".join(wrong_months[:3])},
    ]


def _api_view(client: httpx.Client, admin_key: str) -> dict[str, dict[str, Any]]:
    jobs: dict[str, dict[str, Any]] = {}
    after = None
    while True:
        r = client.get("/jobs", params={"limit": 100, **({"after": after} if after else {})},
                       headers={"Authorization": f"Bearer {admin_key}"})
        r.raise_for_status()
        page = r.json()
        jobs.update({j["id"]: j for j in page["data"]})
        if not page["has_more"]:
            return jobs
        after = page["last_id"]


def _reason(message: str | None) -> str:
    """A failure message with ids and numbers blanked, so like failures group together."""
    text = re.sub(r"\b[a-z]+_[0-9A-Za-z]{8,}\b", "<id>", message or "")
    return re.sub(r"\d+(\.\d+)?", "N", text)[:160]


def invariants(system: System, client: httpx.Client, traffic: Traffic,
               rss: list[tuple[float, float, float]], args: argparse.Namespace) -> dict[str, Any]:
    """Every invariant as {name, held, detail}, and the figures the report prints."""
    with _connect(system.database_url) as conn:
        rows = conn.execute("SELECT id, status, error_code, error_message, attempts FROM jobs"
                            ).fetchall()
        epochs = _epoch_checks(conn)
        late = conn.execute(
            "SELECT count(*) FILTER (WHERE finished_at > deadline), count(*) FROM jobs "
            "WHERE deadline IS NOT NULL AND status = 'succeeded'").fetchone()
    stuck = [(i, s) for i, s, *_ in rows if s not in TERMINAL]
    unexplained = [i for i, s, code, message, _ in rows
                   if s == "failed" and not (code and (message or "").strip())]
    failures = Counter(f"{code}: {_reason(message)}" for _, s, code, message, _ in rows
                       if s == "failed")
    api = _api_view(client, system.admin_key)
    db_status = {i: s for i, s, *_ in rows}
    disagree = [i for i in set(api) | set(db_status)
                if api.get(i, {}).get("status") != db_status.get(i)]
    server_errors = sum(n for k, n in traffic.answers.items()
                        if k.rsplit(" ", 1)[-1].isdigit() and int(k.rsplit(" ", 1)[-1]) >= 500
                        and not k.endswith(" 503"))
    unanswered = sum(n for k, n in traffic.answers.items() if "no answer" in k)
    accepted_bad = [f for f in traffic.findings if f.startswith("bad body")]
    exits = [e for e in system.events if e.action == "unexpected_exit"]
    warm = next((s for s in rss if s[0] >= args.minutes / 4), rss[-1])
    growth = rss[-1][1] - warm[1]
    results: dict[str, Any] = {
        "jobs_by_status": dict(Counter(s for _, s, *_ in rows)),
        "jobs_by_kind_and_status": dict(Counter(f"{traffic.kinds.get(i, 'unknown')} -> {s}"
                                                for i, s, *_ in rows)),
        "failures": dict(failures.most_common()),
        "attempts": dict(Counter(int(a) for *_, a in rows)),
        "deadline_jobs_succeeded_late": list(late or (0, 0)),
        "answers": dict(sorted(traffic.answers.items())),
        "findings": traffic.findings,
        "events": [vars(e) for e in system.events],
        "rss": [{"minute": round(m, 2), "api_mib": round(r, 1), "load_1min": round(load, 2)}
                for m, r, load in rss],
        "rss_growth_mib": round(growth, 1), "rss_warm_minute": round(warm[0], 2),
        "load_at_end": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
        "invariants": [
            {"name": "every job ended (succeeded, failed or cancelled)", "held": not stuck,
             "detail": f"{len(rows)} jobs, {len(stuck)} not ended" + (f": {stuck[:10]}" if stuck else "")},
            {"name": "every failed job has a reason (error code and message)",
             "held": not unexplained, "detail": f"{len(unexplained)} without: {unexplained[:5]}"},
            *epochs,
            {"name": "the API's job list agrees with the database", "held": not disagree,
             "detail": f"{len(api)} jobs through the API; {len(disagree)} differ {disagree[:5]}"},
            {"name": "no 500 (a database outage is a 503)", "held": server_errors == 0,
             "detail": f"{server_errors} 5xx other than 503"},
            {"name": "the API process answered every request", "held": unanswered == 0,
             "detail": f"{unanswered} requests without an answer"},
            {"name": "every bad body answered 4xx", "held": not accepted_bad,
             "detail": "; ".join(accepted_bad[:5]) or "all 4xx"},
            {"name": "no worker or scheduler exited by itself", "held": not exits,
             "detail": "; ".join(f"{e.component} at {e.t} s: {e.detail}" for e in exits[:5])
                       or "none"},
            {"name": f"API memory flat (growth under {args.rss_bound:.0f} MiB)",
             "held": growth < args.rss_bound,
             "detail": f"{warm[1]:.1f} MiB at minute {warm[0]:.1f} -> {rss[-1][1]:.1f} MiB at "
                       f"minute {rss[-1][0]:.1f}: {growth:+.1f} MiB"},
        ],
    }
    return results


def report(results: dict[str, Any], system: System, traffic: Traffic,
           rss: list[tuple[float, float, float]], args: argparse.Namespace, command: str) -> str:
    """The markdown report: command, machine, kills, jobs, failures, answers, invariants, RSS."""
    kills = Counter(e.component for e in system.events if e.action == "kill")
    modes = Counter(f"{e.component}: {e.detail.split(',')[-1].strip()}" for e in system.events
                    if e.action == "kill")
    restarts = [e for e in system.events if e.action == "restart"]
    lines = [f"# Chaos: `{command}`", "",
             f"{args.minutes:g} min of submissions from {args.teams} teams (one every "
             f"{args.job_interval:g} s) and {args.reads_per_second:g} reads/s, a kill every "
             f"{args.kill_min:g}-{args.kill_max:g} s (seed {args.seed}), {args.workers} workers; "
             f"drained in {results['drain_seconds']:.0f} s (bound {args.drain_minutes:g} min). "
             f"Machine: {results['cpus']} CPUs shared with other engineers' work; 1-min load "
             f"{results['load_at_start'][0]} at the start, {results['load_at_end'][0]} at the end, "
             f"{max(r[2] for r in rss):.1f} at most during the run.", "",
             "## Invariants", "", "| invariant | held | detail |", "|---|---|---|"]
    lines += [f"| {i['name']} | {'yes' if i['held'] else '**NO**'} | {i['detail']} |"
              for i in results["invariants"]]
    lines += ["", "## Kills", "", "| component | kills | how |", "|---|---:|---|"]
    lines += [f"| {c} | {kills.get(c, 0)} | "
              + ", ".join(f"{m.split(': ', 1)[1]} × {n}" for m, n in sorted(modes.items())
                          if m.startswith(c + ":")) + " |"
              for c in ("worker", "scheduler", "postgres", "redis")]
    lines += ["", f"{len(restarts)} restarts; unexpected exits: "
              f"{sum(e.action == 'unexpected_exit' for e in system.events)}.", "",
              "## Jobs", "", "| submitted as -> final status | jobs |", "|---|---:|"]
    lines += [f"| {k} | {n} |" for k, n in sorted(results["jobs_by_kind_and_status"].items())]
    late, with_deadline = results["deadline_jobs_succeeded_late"]
    lines += ["", f"By status: {results['jobs_by_status']}; attempts per job: "
              f"{dict(sorted(results['attempts'].items()))}; {late} of {with_deadline} succeeded "
              "jobs with a deadline finished after it (not an invariant: a killed worker's job "
              "may miss its deadline).", "",
              "## Failures, grouped", "", "| error | jobs |", "|---|---:|"]
    lines += [f"| {k} | {n} |" for k, n in results["failures"].items()] or ["| none | 0 |"]
    lines += ["", "## Answers by class", "", "| request answer | count |", "|---|---:|"]
    lines += [f"| {k} | {n} |" for k, n in results["answers"].items()]
    lines += ["", f"Tracebacks in the processes' logs: {results['logged_tracebacks']}."]
    if traffic.findings:
        lines += ["", "Findings:", ""] + [f"- {f}" for f in traffic.findings[:20]]
    step = max(1, len(rss) // 20)
    lines += ["", "## API memory (VmRSS)", "",
              f"Growth from minute {results['rss_warm_minute']} (end of the warm-up quarter) to "
              f"the end: {results['rss_growth_mib']:+.1f} MiB; min {min(r[1] for r in rss):.1f}, "
              f"max {max(r[1] for r in rss):.1f} MiB.", "",
              "| minute | API RSS MiB | 1-min load |", "|---:|---:|---:|"]
    lines += [f"| {m:.1f} | {r:.1f} | {load:.1f} |" for m, r, load in rss[::step] + rss[-1:]]
    lines += ["", "## Timeline of kills", "", "| s | component | action | detail |",
              "|---:|---|---|---|"]
    lines += [f"| {e.t} | {e.component} | {e.action} | {e.detail} |" for e in system.events]
    return "\n".join(lines) + "\n"
