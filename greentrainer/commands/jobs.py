"""`greentrainer jobs create|list|get|watch|cancel|pause|resume|events|checkpoints|download`:
a team's fine-tuning jobs through the API (GREENTRAINER_BASE_URL, GREENTRAINER_API_KEY).

    greentrainer jobs create --file train.jsonl --epochs 2 --rho 0.5 --watch
    greentrainer jobs list --status running
    greentrainer jobs download job_... --output ./model
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from greentrainer.client import Client, Job
from greentrainer.commands.api_cli import (
    UsageError,
    print_fields,
    print_json,
    print_table,
    run,
    show_bars,
    size,
    subcommand,
    subparsers,
)
from greentrainer.commands.job_watch import follow, watch

SHIPPED_MODEL = "smollm2-135m-instruct"  # the server's shipped alias (greentrainer_core.models)
COLUMNS = (("ID", lambda j: j.id), ("STATUS", lambda j: j.status), ("MODEL", lambda j: j.model),
           ("METHOD", lambda j: j.method), ("EPOCHS", lambda j: _epochs(j)),
           ("CREATED", lambda j: j.created_at))


def _epochs(job: Job) -> str:
    done = 0 if job.last_finished_epoch is None else job.last_finished_epoch + 1
    return f"{done}/{job.epochs if job.epochs is not None else '?'}"


def show(job: Job, args: argparse.Namespace) -> None:
    if args.json:
        print_json(job)
        return
    pairs: list[tuple[str, Any]] = [
        ("id", job.id), ("status", job.status), ("model", job.model), ("method", job.method),
        ("epochs", _epochs(job)), ("rho_policy", job.rho_policy),
        ("hyperparameters", job.hyperparameters), ("training_dataset", job.training_dataset),
        ("created", job.created_at), ("started", job.started_at), ("finished", job.finished_at)]
    if job.planned_start_at:
        pairs.append(("planned_start", job.planned_start_at))
    if job.error:
        pairs.append(("error", f"{job.error.code}: {job.error.message}"))
    if job.result:
        pairs.append(("result", job.result))
    print_fields(pairs)


def _rho_policy(args: argparse.Namespace) -> dict[str, Any] | None:
    if args.rho_schedule:
        return {"type": "schedule", "rhos": _floats(args.rho_schedule, "--rho-schedule")}
    if args.region:
        policy: dict[str, Any] = {"type": "carbon_aware", "region": args.region,
                                  "rho_min": args.rho_min, "rho_max": args.rho_max}
        if args.deadline:
            policy["deadline"] = args.deadline
        if args.co2_budget_kg is not None:
            policy["co2_budget_kg"] = args.co2_budget_kg
        return policy
    return {"type": "fixed", "rho": args.rho} if args.rho is not None else None


def _floats(text: str, option: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"{option} {text!r}: expected numbers separated by commas") from None


def create(client: Client, args: argparse.Namespace) -> int:
    if bool(args.dataset) == bool(args.file):
        raise UsageError("give the training data as --dataset <id> or --file <path> (one of them)")
    dataset = args.dataset or client.datasets.upload(args.file).id
    hyper = {name: getattr(args, name) for name in ("epochs", "batch_size", "learning_rate",
                                                    "max_length", "seed")
             if getattr(args, name) is not None}
    try:
        extra = json.loads(args.extra) if args.extra else {}
    except json.JSONDecodeError as exc:
        raise UsageError(f"--extra is not JSON: {exc}") from None
    if not isinstance(extra, dict):
        raise UsageError("--extra must be a JSON object")
    options: dict[str, Any] = {"validation_dataset": args.validation_dataset,
                               "test_dataset": args.test_dataset, "method": args.method,
                               "hyperparameters": hyper or None,
                               "rho_policy": _rho_policy(args), "gpu_class": args.gpu_class}
    job = client.jobs.create(model=args.model, training_dataset=dataset,
                             idempotency_key=args.idempotency_key, **{**options, **extra})
    if args.watch:
        args.job_id, args.timeout = job.id, None
        if not args.json:
            print(f"created {job.id}")
        return watch(client, args)
    show(job, args)
    return 0


def list_(client: Client, args: argparse.Namespace) -> int:
    if args.all:
        rows = list(client.jobs.iter(status=args.status))
        print_json(rows) if args.json else print_table(rows, COLUMNS, "no jobs")
        return 0
    page = client.jobs.list(limit=args.limit, after=args.after, status=args.status)
    if args.json:
        print_json(page)
        return 0
    print_table(page.data, COLUMNS, "no jobs")
    if page.has_more:
        print(f"(more: --after {page.last_id}, or --all)")
    return 0


def _action(name: str) -> Any:
    def handler(client: Client, args: argparse.Namespace) -> int:
        show(getattr(client.jobs, name)(args.job_id), args)
        return 0
    return handler


def events(client: Client, args: argparse.Namespace) -> int:
    if args.follow:
        return follow(client, args)
    rows = list(client.jobs.iter_events(args.job_id, after=args.after))
    if args.json:
        for event in rows:
            print_json(event)
        return 0
    print_table(rows, (("ID", lambda e: e.id), ("TIME", lambda e: e.created_at),
                       ("LEVEL", lambda e: e.level), ("TYPE", lambda e: e.type),
                       ("MESSAGE", lambda e: e.message)), "no events")
    return 0


def checkpoints(client: Client, args: argparse.Namespace) -> int:
    rows = client.jobs.checkpoints(args.job_id)
    if args.json:
        print_json(rows)
        return 0
    print_table(rows, (
        ("EPOCH", lambda e: e.epoch_index), ("RHO", lambda e: f"{e.rho:.2f}"),
        ("LOSS", lambda e: None if e.loss is None else f"{e.loss:.4f}"),
        ("TENSORS", lambda e: e.selected_tensor_count),
        ("FLOPS", lambda e: f"{e.executed_flops / e.full_ft_flops:.0%}" if e.full_ft_flops else None),
        ("SECONDS", lambda e: f"{e.wall_seconds:.1f}"),
        ("ENERGY kWh", lambda e: None if e.energy_kwh is None else f"{e.energy_kwh:.3g}"),
        ("CO2 g", lambda e: None if e.kg_co2 is None else f"{1000 * e.kg_co2:.3g}"),
        ("g/kWh", lambda e: e.carbon_intensity_g_per_kwh)), "no finished epochs yet")
    return 0


def download(client: Client, args: argparse.Namespace) -> int:
    artifacts = client.jobs.artifacts(args.job_id)
    chosen = [a for a in artifacts if (args.artifact is None or a.id == args.artifact)
              and (args.kind is None or a.kind == args.kind)]
    if not chosen:
        wanted = args.artifact or args.kind
        have = ", ".join(f"{a.id} ({a.kind})" for a in artifacts) or "none yet"
        raise UsageError(f"job {args.job_id} has no artifact {wanted!r}; it has: {have}"
                         if wanted else f"job {args.job_id} has no artifacts yet")
    directory = Path(args.output or args.job_id)
    directory.mkdir(parents=True, exist_ok=True)
    for artifact in chosen:
        bar: Any = None
        if show_bars(args):
            from tqdm import tqdm

            bar = tqdm(total=artifact.size_bytes, unit="B", unit_scale=True, unit_divisor=1024,
                       desc=artifact.filename, leave=False)
        try:
            path = client.jobs.download(
                args.job_id, artifact.id, directory / artifact.filename,
                progress=None if bar is None else lambda done, _total: bar.update(done - bar.n))
        finally:
            if bar is not None:
                bar.close()
        if args.json:
            print_json({**artifact.raw, "path": str(path)})
        else:
            print(f"{path}  {artifact.kind}  {size(artifact.size_bytes)}")
    return 0


def _create_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--model", default=SHIPPED_MODEL,
                     help=f"shipped alias, cached Hugging Face id or allowed path (default {SHIPPED_MODEL})")
    sub.add_argument("--dataset", help="id of an uploaded training data set")
    sub.add_argument("--file", help="a local training file to upload first")
    sub.add_argument("--validation-dataset", help="id of a validation data set")
    sub.add_argument("--test-dataset", help="id of a test data set (ROUGE at the end)")
    sub.add_argument("--method", help="greentrainer (default), full, lora, prefix, ...")
    sub.add_argument("--epochs", type=int)
    sub.add_argument("--batch-size", type=int)
    sub.add_argument("--learning-rate", type=float)
    sub.add_argument("--max-length", type=int)
    sub.add_argument("--seed", type=int)
    sub.add_argument("--rho", type=float, help="a fixed rho for every epoch, (0, 1]")
    sub.add_argument("--rho-schedule", help="one rho per epoch: 0.4,0.6,0.8")
    sub.add_argument("--region", help="carbon-aware rho on this grid region (GB, FR, ...)")
    sub.add_argument("--rho-min", type=float, default=0.3, help="carbon-aware: lowest rho")
    sub.add_argument("--rho-max", type=float, default=1.0, help="carbon-aware: highest rho")
    sub.add_argument("--deadline", help="carbon-aware: finish by (ISO 8601)")
    sub.add_argument("--co2-budget-kg", type=float, help="carbon-aware: the job's CO2 budget")
    sub.add_argument("--gpu-class", help="the GPU class to run on (default any)")
    sub.add_argument("--extra", help="more body fields as a JSON object (override the above)")
    sub.add_argument("--idempotency-key", help="make a retried create return the first job")
    sub.add_argument("--watch", action="store_true", help="then watch it until it finishes")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="greentrainer jobs", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    subs = subparsers(p)
    _create_options(subcommand(subs, "create", create, "submit a fine-tuning job"))
    sub = subcommand(subs, "list", list_, "list the team's jobs, newest first")
    sub.add_argument("--status", help="only jobs in this status")
    sub.add_argument("--limit", type=int, default=20, help="page size (1-100)")
    sub.add_argument("--after", help="the last id of the previous page")
    sub.add_argument("--all", action="store_true", help="every page")
    for name, handler, help_ in (
            ("get", _action("get"), "show one job"),
            ("cancel", _action("cancel"), "cancel a job"),
            ("pause", _action("pause"), "pause a job (a running one at its next epoch boundary)"),
            ("resume", _action("resume"), "put a paused job back in the queue"),
            ("checkpoints", checkpoints, "the finished epochs and their metrics")):
        subcommand(subs, name, handler, help_).add_argument("job_id")
    sub = subcommand(subs, "watch", watch, "follow a job live until it finishes "
                     "(exit 0 only if it succeeded)")
    sub.add_argument("job_id")
    sub.add_argument("--timeout", type=float, help="give up after this many seconds")
    sub = subcommand(subs, "events", events, "the job's event log")
    sub.add_argument("job_id")
    sub.add_argument("--after", type=int, help="only events after this event id")
    sub.add_argument("--follow", "-f", action="store_true", help="keep printing new events "
                     "until the job finishes")
    sub = subcommand(subs, "download", download, "download a job's outputs (all, or one)")
    sub.add_argument("job_id")
    sub.add_argument("--artifact", help="only this artifact id")
    sub.add_argument("--kind", help="only artifacts of this kind (model, delta, metrics, ...)")
    sub.add_argument("--output", "-o", help="directory to write into (default: ./<job id>)")
    return p


def jobs_main(argv: Sequence[str] | None = None) -> int:
    return run("greentrainer jobs", parser(), argv)
