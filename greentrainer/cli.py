"""`greentrainer <command>`: names each command and the module of `greentrainer.commands` that
runs it (``<module>.<function>(argv) -> int``), imported only when that command runs, so that
`greentrainer train` never imports the service and `greentrainer serve` never imports torch.
"""

from __future__ import annotations

import importlib
import sys

# command -> (module, function, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "up": ("greentrainer.commands.up", "up_main", "run API, dashboard, worker and scheduler together (embedded defaults)"),
    "serve": ("greentrainer.commands.serve", "serve_main", "run the HTTP API and dashboard"),
    "migrate": ("greentrainer.commands.serve", "migrate_main", "upgrade the database schema to the latest revision"),
    "worker": ("greentrainer.commands.worker", "worker_main", "run a Celery worker that trains jobs on one GPU (or CPU)"),
    "scheduler": ("greentrainer.commands.scheduler", "scheduler_main", "run the carbon-aware dispatcher"),
    "dispatcher": ("greentrainer.commands.dispatcher", "dispatcher_main",
                   "run the dispatcher and reconciler (scheduler --dispatch)"),
    "simulate": ("greentrainer.commands.simulate", "simulate_main", "replay a carbon-intensity trace against the policies"),
    "train": ("greentrainer.commands.train", "train_main", "fine-tune a model with GreenTrainer from the command line"),
    "profile": ("greentrainer.commands.profile", "profile_main", "print a model's tensor FLOPs profile and a selection at rho"),
    "jobs": ("greentrainer.commands.jobs", "jobs_main",
             "submit, list, watch, pause, cancel and download jobs through the API"),
    "datasets": ("greentrainer.commands.datasets", "datasets_main",
                 "upload, list, show and delete data sets through the API"),
}


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: greentrainer <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, _, help_) in COMMANDS.items()]
    lines += ["", "Run `greentrainer <command> --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"greentrainer: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, function_name, _ = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            print(f"greentrainer: the {name!r} command is not available in this build ({exc})", file=sys.stderr)
            return 2
        raise
    try:
        return int(getattr(module, function_name)(rest) or 0)
    except Exception as exc:
        message = settings_error(exc)
        if message is None:
            raise
        print(f"greentrainer {name}: {message}", file=sys.stderr)
        return 2


SECRET_PARTS = ("KEY", "URL", "PASSWORD", "SECRET", "TOKEN")


def settings_error(exc: BaseException) -> str | None:
    """What is wrong with the GREENTRAINER_* variables, one line per variable that does not parse
    (the service's `Settings` raise pydantic's ValidationError); None for any other exception.
    A value is repeated unless its variable may hold a secret (a key, a URL with a password).
    A section's setting given by its old flat name is named by both."""
    if type(exc).__name__ != "ValidationError" or getattr(exc, "title", None) != "Settings":
        return None
    import os

    from service.settings import LEGACY_NAMES, env_name

    legacy: dict[tuple[str, ...], str] = {where: old for old, where in LEGACY_NAMES.items()}
    lines = []
    for error in exc.errors():  # type: ignore[attr-defined]
        loc = tuple(str(part) for part in error["loc"])
        variable = env_name(*loc)
        old = legacy.get(loc[:2]) if len(loc) >= 2 else None
        if old is not None and old in os.environ and variable not in os.environ:
            variable = f"{old} (now {variable})"
        shown = "" if any(part in variable for part in SECRET_PARTS) else f"={error['input']!r}"
        lines.append(f"{variable}{shown}: {error['msg']}")
    return "; ".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
