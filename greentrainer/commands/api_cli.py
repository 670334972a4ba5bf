"""What `greentrainer jobs` and `greentrainer datasets` share: the connection options, the
one-line error, tables for people, ``--json`` for scripts and the rule for progress bars.

Exit status: 0 done; 1 the API refused or could not be reached (or a watched job did not
succeed); 2 the command line or a local file is wrong. Every failure is one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import is_dataclass
from datetime import datetime
from typing import Any

from greentrainer.client import API_KEY_ENV, BASE_URL_ENV, Client, GreenTrainerError
from greentrainer.progress import bars_wanted


class UsageError(Exception):
    """A command line that cannot run (exit 2)."""


def add_connection(parser: argparse.ArgumentParser) -> None:
    """The options every subcommand takes (after the subcommand's name)."""
    parser.add_argument("--base-url", help=f"the API's address (default: ${BASE_URL_ENV}, "
                        "else http://127.0.0.1:8000)")
    parser.add_argument("--api-key", help=f"the team's API key (default: ${API_KEY_ENV})")
    parser.add_argument("--json", action="store_true",
                        help="print the API's JSON (one object, or one per line) instead of tables")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (also off when the output is not a terminal)")


def show_bars(args: argparse.Namespace) -> bool:
    """Bars only for a person at a terminal: not with --no-progress, --json, or when either
    output stream is redirected (a pipe, a file, a CI log)."""
    return bars_wanted(args.no_progress or args.json)


def make_client(args: argparse.Namespace) -> Client:
    key = args.api_key or os.environ.get(API_KEY_ENV)
    if not key:
        raise UsageError(f"no API key: set {API_KEY_ENV} or pass --api-key")
    return Client(args.base_url, key)


def run(prog: str, parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse ``argv`` and call the chosen subcommand (``args.handler(client, args) -> int``),
    turning every expected failure into one line on stderr and its exit status."""
    args = parser.parse_args(argv)
    name = f"{prog} {args.subcommand}"
    try:
        with make_client(args) as client:
            return int(args.handler(client, args) or 0)
    except UsageError as exc:
        return fail(name, str(exc), 2)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        return fail(name, exc.args[-1] if exc.args else str(exc), 2)
    except GreenTrainerError as exc:
        return fail(name, str(exc), 1)
    except KeyboardInterrupt:
        return fail(name, "interrupted", 130)
    except BrokenPipeError:  # `greentrainer jobs list | head`: the reader left, nothing to say
        sys.stderr.close()
        return 1


def fail(name: str, message: str, code: int) -> int:
    print(f"{name}: error: {' '.join(str(message).split())}", file=sys.stderr)
    return code


def to_json(value: Any) -> Any:
    """The API's own JSON of a record (or of a list or page of records)."""
    if is_dataclass(value) and hasattr(value, "raw"):
        return value.raw
    if hasattr(value, "data") and hasattr(value, "has_more"):
        return {"object": "list", "data": [to_json(v) for v in value.data],
                "has_more": value.has_more, "last_id": value.last_id}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    return value


def print_json(value: Any) -> None:
    print(json.dumps(to_json(value), separators=(",", ":")), flush=True)


Column = tuple[str, Callable[[Any], Any]]


def print_table(rows: Sequence[Any], columns: Sequence[Column], empty: str) -> None:
    if not rows:
        print(empty)
        return
    cells = [[cell(c(row)) for _, c in columns] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, (h, _) in enumerate(columns)]
    print("  ".join(h.ljust(w) for (h, _), w in zip(columns, widths)).rstrip())
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def print_fields(pairs: Sequence[tuple[str, Any]]) -> None:
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        if isinstance(value, dict):
            value = json.dumps(value, separators=(", ", ": "))
        print(f"{key:<{width}}  {cell(value)}")


def size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def subparsers(parser: argparse.ArgumentParser) -> Any:
    return parser.add_subparsers(dest="subcommand", required=True, metavar="<subcommand>")


def subcommand(subs: Any, name: str, handler: Callable[..., int], help_: str) -> Any:
    sub = subs.add_parser(name, help=help_, description=help_)
    sub.set_defaults(handler=handler)
    add_connection(sub)
    return sub
