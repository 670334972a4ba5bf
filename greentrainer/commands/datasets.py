"""`greentrainer datasets upload|list|get|delete`: a team's data sets through the API.

    greentrainer datasets upload train.jsonl            # prints the new data set's id
    greentrainer datasets list --all --json
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from greentrainer.client import Client, Dataset
from greentrainer.commands.api_cli import (
    print_fields,
    print_json,
    print_table,
    run,
    show_bars,
    size,
    subcommand,
    subparsers,
)

COLUMNS = (("ID", lambda d: d.id), ("NAME", lambda d: d.name), ("FORMAT", lambda d: d.format),
           ("ROWS", lambda d: d.row_count), ("SIZE", lambda d: size(d.size_bytes)),
           ("CREATED", lambda d: d.created_at))


def _show(dataset: Dataset, args: argparse.Namespace) -> None:
    if args.json:
        print_json(dataset)
        return
    print_fields([("id", dataset.id), ("name", dataset.name), ("format", dataset.format),
                  ("rows", dataset.row_count), ("size", size(dataset.size_bytes)),
                  ("fields", f"{dataset.source_field} -> {dataset.target_field}"),
                  ("sha256", dataset.sha256), ("created", dataset.created_at)])


def upload(client: Client, args: argparse.Namespace) -> int:
    bar: Any = None
    if show_bars(args):
        from tqdm import tqdm

        bar = tqdm(unit="B", unit_scale=True, unit_divisor=1024, desc=f"uploading {args.file}",
                   leave=False)

    def progress(sent: int, total: int) -> None:
        if bar is not None:
            bar.total = total
            bar.update(sent - bar.n)

    try:
        dataset = client.datasets.upload(args.file, name=args.name, format=args.format,
                                         source_field=args.source_field,
                                         target_field=args.target_field, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    _show(dataset, args)
    return 0


def list_(client: Client, args: argparse.Namespace) -> int:
    if args.all:
        rows = list(client.datasets.iter())
        print_json(rows) if args.json else print_table(rows, COLUMNS, "no data sets")
        return 0
    page = client.datasets.list(limit=args.limit, after=args.after)
    if args.json:
        print_json(page)
        return 0
    print_table(page.data, COLUMNS, "no data sets")
    if page.has_more:
        print(f"(more: --after {page.last_id}, or --all)")
    return 0


def get(client: Client, args: argparse.Namespace) -> int:
    _show(client.datasets.get(args.dataset_id), args)
    return 0


def delete(client: Client, args: argparse.Namespace) -> int:
    client.datasets.delete(args.dataset_id)
    if args.json:
        print_json({"id": args.dataset_id, "object": "dataset", "deleted": True})
    else:
        print(f"deleted {args.dataset_id}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="greentrainer datasets", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    subs = subparsers(p)
    sub = subcommand(subs, "upload", upload, "upload a JSONL, CSV or Parquet file (streamed)")
    sub.add_argument("file", help="the file to upload")
    sub.add_argument("--name", help="a name for it (default: the file's name)")
    sub.add_argument("--format", choices=("jsonl", "csv", "parquet"),
                     help="the file's format (default: from its name)")
    sub.add_argument("--source-field", help="the input column (server default: source)")
    sub.add_argument("--target-field", help="the output column (server default: target)")
    sub = subcommand(subs, "list", list_, "list the team's data sets, newest first")
    sub.add_argument("--limit", type=int, default=20, help="page size (1-100)")
    sub.add_argument("--after", help="the last id of the previous page")
    sub.add_argument("--all", action="store_true", help="every page")
    for name, handler, help_ in (("get", get, "show one data set"),
                                 ("delete", delete, "delete a data set no job uses")):
        subcommand(subs, name, handler, help_).add_argument("dataset_id")
    return p


def datasets_main(argv: Sequence[str] | None = None) -> int:
    return run("greentrainer datasets", parser(), argv)
