"""`greentrainer <command>`: dispatches each command to the part of the project that owns it.

Each part keeps its own argument parser (``<module>.<function>(argv) -> int``); this module only
names the commands, so `greentrainer train` never imports the service and `greentrainer serve`
never imports torch.
"""

from __future__ import annotations

import importlib
import sys

# command -> (module, function, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "up": ("service.cli", "up_main", "run API, dashboard, worker and scheduler together (embedded defaults)"),
    "serve": ("service.cli", "serve_main", "run the HTTP API and dashboard"),
    "migrate": ("service.cli", "migrate_main", "upgrade the database schema to the latest revision"),
    "worker": ("worker.cli", "worker_main", "run a Celery worker that trains jobs on one GPU (or CPU)"),
    "scheduler": ("service.scheduler.cli", "scheduler_main", "run the carbon-aware dispatcher"),
    "simulate": ("service.scheduler.cli", "simulate_main", "replay a carbon-intensity trace against the policies"),
    "train": ("greentrainer_core.cli", "train_main", "fine-tune a model with GreenTrainer from the command line"),
    "profile": ("greentrainer_core.profile_cli", "profile_main", "print a model's tensor FLOPs profile and a selection at rho"),
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
    A value is repeated unless its variable may hold a secret (a key, a URL with a password)."""
    if type(exc).__name__ != "ValidationError" or getattr(exc, "title", None) != "Settings":
        return None
    lines = []
    for error in exc.errors():  # type: ignore[attr-defined]
        variable = "GREENTRAINER_" + "_".join(str(part) for part in error["loc"]).upper()
        shown = "" if any(part in variable for part in SECRET_PARTS) else f"={error['input']!r}"
        lines.append(f"{variable}{shown}: {error['msg']}")
    return "; ".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
