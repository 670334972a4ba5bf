"""Chaos run of the whole system: mixed submissions from several teams while a worker, the
scheduler, Postgres and Redis are each killed and restarted at random (issue 24).

Starts, as separate processes on loopback, a private Postgres cluster and a private Redis (never
the shared ones), `greentrainer migrate` and `serve`, --workers `greentrainer worker` processes
and `greentrainer scheduler --dispatch`, with the tiny random-init Llama model
(benchmarks/chaos_system.py). For --minutes, --teams teams (made through the admin API) submit
through the HTTP API, as users would, a job every --job-interval seconds: small 1-2 epoch jobs,
some carbon-aware, some with a deadline, some cancelled by their team a few seconds later, and
some bad bodies that must be answered 4xx. A reader thread reads job lists, jobs, epochs and
events. A chaos thread (seeded) waits --kill-min..--kill-max seconds, SIGKILLs one component
(turn by turn in a shuffled order), waits a random downtime and starts it again; Postgres is
stopped with `pg_ctl stop -m immediate` or by a SIGKILL of its postmaster, in turn.

Submissions retry a 503 or a broken connection with the same Idempotency-Key, as a client
should. Every answer is counted by class: a 503 while Postgres is down is expected, a 500 is a
finding. The API process's resident memory is sampled every --sample seconds.

Then submitting stops, every component is up again, and the system has --drain-minutes to
finish. The invariants are checked from the database and the API (benchmarks/chaos_checks.py);
the report goes to stdout and to --out (.md and .json). Exit status 1 when one is broken.

    nice python3 benchmarks/chaos.py --minutes 30 --seed 1
    python3 benchmarks/chaos.py --minutes 1.5 --kill-min 6 --kill-max 12 --out /tmp/chaos
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chaos_checks import invariants, report, unfinished  # noqa: E402
from chaos_system import GPU_CLASS, ROOT, System  # noqa: E402
from soak import rss_mib  # noqa: E402

COMPONENTS = ("worker", "scheduler", "postgres", "redis")
# Bodies a careless client sends; each must be answered 4xx (422 or 404), never 2xx or 500.
BAD_BODIES: list[tuple[str, dict[str, Any]]] = [
    ("no model", {"hyperparameters": {"epochs": 1}}),
    ("rho above 1", {"rho_policy": {"type": "fixed", "rho": 1.5}}),
    ("zero epochs", {"hyperparameters": {"epochs": 0}}),
    ("unknown data set", {"training_dataset": "ds_doesnotexist"}),
    ("deadline in the past", {"rho_policy": {"type": "fixed", "rho": 0.7,
                                             "deadline": "2020-01-01T00:00:00Z"}}),
    ("unknown field", {"learning_rat": 0.1}),
    ("rho_min above rho_max", {"rho_policy": {"type": "carbon-aware", "rho_min": 0.9,
                                              "rho_max": 0.5, "region": "GB"}}),
    ("model outside the allowed places", {"model": "/etc/passwd"}),
]


@dataclass
class Traffic:
    """What the clients sent and got back (shared by the submitter and the reader thread)."""

    answers: Counter[str] = field(default_factory=Counter)
    findings: list[str] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)  # job id -> kind of submission
    owners: dict[str, dict[str, str]] = field(default_factory=dict)  # job id -> its team's key
    # Deadlines fall before the end of the drain: the scheduler may hold a job for a cleaner
    # hour until its deadline, and a job still waiting when the run ends proves nothing.
    deadline_by: datetime = field(default_factory=lambda: datetime.now(UTC))
    teams: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, what: str, answer: httpx.Response | Exception) -> str:
        if isinstance(answer, Exception):
            cls = f"no answer ({type(answer).__name__})"
        elif answer.status_code == 503:
            cls = "503"
        elif answer.status_code >= 500:
            cls = f"{answer.status_code}"
        else:
            cls = f"{answer.status_code // 100}xx"
        with self.lock:
            self.answers[f"{what} {cls}"] += 1
            if not isinstance(answer, Exception) and answer.status_code >= 500 \
                    and answer.status_code != 503 and len(self.findings) < 50:
                self.findings.append(f"{what}: {answer.status_code} {answer.text[:300]}")
        return cls


def call(client: httpx.Client, traffic: Traffic, what: str, method: str, path: str,
         retry_s: float = 0, **kwargs: Any) -> httpx.Response | None:
    """One request, repeated while it is answered 503 or not at all for up to ``retry_s``
    seconds (a client's retry; POSTs carry an Idempotency-Key so a repeat is one job)."""
    deadline = time.monotonic() + retry_s
    while True:
        try:
            answer: httpx.Response | Exception = client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            answer = exc
        cls = traffic.count(what, answer)
        if isinstance(answer, httpx.Response) and cls != "503":
            return answer
        if time.monotonic() > deadline:
            return None
        time.sleep(1)


def setup_teams(client: httpx.Client, system: System, traffic: Traffic, n: int) -> list[dict[str, str]]:
    """``n`` teams through the admin API, each with a short and a longer data set."""
    datasets = []
    for i in range(n):
        r = client.post("/teams", json={"name": f"chaos-{i}"},
                        headers={"Authorization": f"Bearer {system.admin_key}"})
        r.raise_for_status()
        team = {"Authorization": f"Bearer {r.json()['api_key']['key']}"}
        ids = {}
        for label, rows in (("short", 8), ("long", 48)):
            text = "\n".join(json.dumps({"source": f"team {i} {label} row {k}",
                                         "target": f"answer {k}"}) for k in range(rows))
            r = client.post("/datasets", files={"file": (f"{label}.jsonl", text.encode())},
                            headers=team)
            r.raise_for_status()
            ids[label] = r.json()["id"]
        traffic.teams.append(team)
        datasets.append(ids)
    return [{**t, "short": d["short"], "long": d["long"]} for t, d in zip(traffic.teams, datasets,
                                                                           strict=True)]


def job_body(kind: str, rng: random.Random, system: System, datasets: dict[str, str],
             deadline_by: datetime) -> dict[str, Any]:
    epochs = rng.choice((1, 2))
    body: dict[str, Any] = {"model": str(system.model_dir), "gpu_class": GPU_CLASS,
                            "training_dataset": datasets["short"],
                            "hyperparameters": {"epochs": epochs, "batch_size": 4,
                                                "max_length": 64},
                            "rho_policy": {"type": "fixed", "rho": rng.choice((0.5, 0.7, 1.0))}}
    deadline = min(datetime.now(UTC) + timedelta(minutes=rng.uniform(3, 20)),
                   deadline_by).isoformat()
    if kind == "carbon-aware":
        body["rho_policy"] = {"type": "carbon-aware", "rho_min": 0.5, "rho_max": 1.0,
                              "region": rng.choice(("GB", "FR"))}
        if rng.random() < 0.5:
            body["rho_policy"]["deadline"] = deadline
    elif kind == "deadline":
        body["rho_policy"]["deadline"] = deadline
    elif kind == "cancelled":  # longer, so the cancel often lands while it runs
        body["training_dataset"] = datasets["long"]
        body["hyperparameters"] = {"epochs": 2, "batch_size": 1, "max_length": 64}
    return body


def submit(client: httpx.Client, traffic: Traffic, rng: random.Random, system: System,
           team: dict[str, str], cancels: list[tuple[float, dict[str, str], str]]) -> None:
    headers = {"Authorization": team["Authorization"]}
    kind = rng.choices(("plain", "carbon-aware", "deadline", "cancelled", "bad"),
                       weights=(45, 20, 15, 10, 10))[0]
    if kind == "bad":
        label, change = rng.choice(BAD_BODIES)
        body = {**job_body("plain", rng, system, team, traffic.deadline_by), **change}
        if label == "no model":
            body.pop("model")
        r = call(client, traffic, "POST /jobs (bad body)", "POST", "/jobs", retry_s=60, json=body,
                 headers={**headers, "Idempotency-Key": secrets.token_hex(12)})
        if r is not None and r.status_code < 400:
            traffic.findings.append(f"bad body '{label}' was accepted: {r.status_code}")
        return
    r = call(client, traffic, "POST /jobs", "POST", "/jobs", retry_s=60,
             json=job_body(kind, rng, system, team, traffic.deadline_by),
             headers={**headers, "Idempotency-Key": secrets.token_hex(12)})
    if r is None or r.status_code != 201:
        traffic.findings.append(f"a {kind} submission was not accepted: "
                                f"{'no answer' if r is None else f'{r.status_code} {r.text[:200]}'}")
        return
    job_id = r.json()["id"]
    traffic.owners[job_id] = headers
    traffic.kinds[job_id] = kind
    if kind == "cancelled":
        cancels.append((time.monotonic() + rng.uniform(3, 15), headers, job_id))


def reader(base_url: str, traffic: Traffic, stop: threading.Event, rate: float) -> None:
    """Reads as a dashboard would: lists, one job, its epochs and events."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        i = 0
        while not stop.is_set():
            if traffic.teams:
                team = traffic.teams[i % len(traffic.teams)]
                jobs = list(traffic.kinds)
                paths = [("/jobs", "/jobs?limit=20"), ("/stats/overview", "/stats/overview")]
                if jobs:
                    job = jobs[-1 - (i % min(len(jobs), 20))]
                    paths += [(f"/jobs/{{id}}{tail}", f"/jobs/{job}{tail}")
                              for tail in ("", "/epochs", "/events")]
                label, path = paths[i % len(paths)]
                call(client, traffic, "GET " + label, "GET", path,
                     headers=traffic.owners.get(path.split("/")[2], team) if "{id}" in label else team)
            i += 1
            stop.wait(1 / rate)


def chaos(system: System, args: argparse.Namespace, rng: random.Random,
          stop: threading.Event) -> None:
    """Kill one component, wait, start it again; turn by turn over the components in an order
    shuffled once per round, so each is killed about as often."""
    pg_modes = ["immediate", "sigkill"]
    order: list[str] = []
    while not stop.wait(rng.uniform(args.kill_min, args.kill_max)):
        if not order:
            order = rng.sample(COMPONENTS, len(COMPONENTS))
        component = order.pop()
        if component == "worker":
            busy = system.busy_worker() if rng.random() < args.busy_worker_share else None
            name = busy or f"worker-{rng.randrange(args.workers)}"
            system.kill_component(name)
            system.record("worker", "kill", f"{name}, SIGKILL {'mid-job' if busy else 'at random'}")
            time.sleep(rng.uniform(0, 3))
            system.start_component(name)
            system.record("worker", "restart", name)
        elif component == "scheduler":
            system.kill_component("scheduler")
            system.record("scheduler", "kill", "SIGKILL")
            time.sleep(rng.uniform(0, 3))
            system.start_component("scheduler")
            system.record("scheduler", "restart")
        elif component == "postgres":
            mode = pg_modes[sum(e.action == "kill" and e.component == "postgres"
                                for e in system.events) % 2]
            system.kill_postgres(mode)
            system.record("postgres", "kill", mode)
            time.sleep(rng.uniform(1, args.pg_down_max))
            system.start_postgres()
            system.record("postgres", "restart")
        else:
            system.redis.kill()
            system.record("redis", "kill", "SIGKILL (no persistence: queued messages lost)")
            time.sleep(rng.uniform(1, args.redis_down_max))
            system.redis.start()
            system.record("redis", "restart")


def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="gt-chaos-"))
    system = System(root)
    traffic = Traffic()
    rss: list[tuple[float, float, float]] = []  # (minute, API MiB, 1-min load)
    # nohup'ed runs ignore SIGINT: a SIGTERM must still stop every process and cluster started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    load_start = os.getloadavg()
    print(f"chaos: working directory {root}", file=sys.stderr, flush=True)
    stop_chaos, stop_reads = threading.Event(), threading.Event()
    cancels: list[tuple[float, dict[str, str], str]] = []
    drain_s = 0.0
    try:
        system.start(args.workers)
        with httpx.Client(base_url=system.base_url, timeout=30) as client:
            teams = setup_teams(client, system, traffic, args.teams)
            threading.Thread(target=reader, args=(system.base_url, traffic, stop_reads,
                                                  args.reads_per_second), daemon=True).start()
            chaos_thread = threading.Thread(target=chaos, args=(system, args, rng, stop_chaos),
                                            daemon=True)
            system.begin = begin = time.monotonic()
            traffic.deadline_by = datetime.now(UTC) + timedelta(
                minutes=args.minutes + args.drain_minutes - 1)
            chaos_thread.start()
            next_job = next_sample = begin
            n = 0
            while (now := time.monotonic()) < begin + args.minutes * 60:
                if now >= next_sample:
                    rss.append(((now - begin) / 60, rss_mib(system.api.pid),  # type: ignore[union-attr]
                                os.getloadavg()[0]))
                    next_sample += args.sample
                if now >= next_job:
                    submit(client, traffic, rng, system, teams[n % len(teams)], cancels)
                    n += 1
                    next_job += args.job_interval
                for due in [c for c in cancels if c[0] <= now]:
                    cancels.remove(due)
                    call(client, traffic, "POST /jobs/{id}/cancel", "POST",
                         f"/jobs/{due[2]}/cancel", retry_s=60, headers=due[1])
                system.supervise()
                time.sleep(0.2)
            stop_chaos.set()
            chaos_thread.join(timeout=120)  # finishes its restart: everything is up again
            for _due, headers, job_id in cancels:
                call(client, traffic, "POST /jobs/{id}/cancel", "POST", f"/jobs/{job_id}/cancel",
                     retry_s=60, headers=headers)
            drain_begin = time.monotonic()
            while time.monotonic() < drain_begin + args.drain_minutes * 60:
                system.supervise()
                if not unfinished(system.database_url):
                    break
                time.sleep(2)
            drain_s = time.monotonic() - drain_begin
            stop_reads.set()
            rss.append(((time.monotonic() - begin) / 60, rss_mib(system.api.pid),  # type: ignore[union-attr]
                        os.getloadavg()[0]))
            results = invariants(system, client, traffic, rss, args)
    finally:
        stop_chaos.set()
        stop_reads.set()
        system.stop()
    results["drain_seconds"] = round(drain_s, 1)
    results["logged_tracebacks"] = {  # what each process logged: read it when this is not zero
        log.name: log.read_text(errors="replace").count("Traceback")
        for log in sorted([*root.glob("*.log"), root / "data" / "server.log"]) if log.exists()}
    results["load_at_start"] = [round(x, 2) for x in load_start]
    text = report(results, system, traffic, rss, args, " ".join(["python3", *sys.argv]))
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    ok = all(inv["held"] for inv in results["invariants"])
    if ok:
        shutil.rmtree(root, ignore_errors=True)
    else:
        print(f"chaos: logs kept in {root}", file=sys.stderr)
    return 0 if ok else 1


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30, help="submitting, under chaos")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--teams", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kill-min", type=float, default=20, help="seconds between kills, least")
    parser.add_argument("--kill-max", type=float, default=60, help="seconds between kills, most")
    parser.add_argument("--busy-worker-share", type=float, default=0.0, help="share of worker "
                        "kills aimed at a worker running a job (when one is)")
    parser.add_argument("--pg-down-max", type=float, default=15, help="longest Postgres outage, s")
    parser.add_argument("--redis-down-max", type=float, default=10, help="longest Redis outage, s")
    parser.add_argument("--job-interval", type=float, default=8, help="seconds between submissions")
    parser.add_argument("--reads-per-second", type=float, default=4)
    parser.add_argument("--sample", type=float, default=15, help="seconds between RSS samples")
    parser.add_argument("--drain-minutes", type=float, default=6)
    parser.add_argument("--rss-bound", type=float, default=30, help="MiB the API may grow by")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "chaos"))
    args = parser.parse_args(argv)
    if not 0 < args.kill_min <= args.kill_max:
        parser.error("--kill-min must be positive and at most --kill-max")
    return args


if __name__ == "__main__":
    raise SystemExit(run(parse()))
