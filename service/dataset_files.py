"""Validation of uploaded data set files (JSONL, CSV, Parquet), before any job can use them.

Two kinds of rows: pairs, where every row needs a non-empty text ``source`` and ``target``
(names configurable; a JSONL file of ``prompt``/``completion`` rows is read as such when no
field names are given), and chat, OpenAI's fine-tuning JSONL (``{"messages": [...]}``, a JSONL
file whose first row has ``messages``), checked by the core's own rule
(`greentrainer_core.chat_messages`). Every bad line is reported (the first
``PROBLEMS_REPORTED`` of them, each with its line number, or row for Parquet, which has no
lines) in one `InvalidDataset`."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from greentrainer_core.chat_messages import message_problem
from service.errors import InvalidDataset

FORMATS = {"jsonl": ".jsonl", "csv": ".csv", "parquet": ".parquet"}
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
KINDS = ("pairs", "chat")
CHAT_FIELD = "messages"
PROMPT_COMPLETION = ("prompt", "completion")  # OpenAI's legacy format, a pair by another name
PROBLEMS_REPORTED = 20

# A reader yields (line or row number, what is wrong with it or None).
Checked = Iterator[tuple[int, str | None]]


def detect_format(filename: str | None, declared: str | None) -> str:
    """The file format, from the explicit ``format`` field or else the file name's suffix."""
    if declared:
        if declared not in FORMATS:
            raise InvalidDataset(f"unknown format {declared!r}; use one of {', '.join(FORMATS)}",
                                 field="format")
        return declared
    name = (filename or "").lower()
    for suffix, fmt in _SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    raise InvalidDataset(f"cannot tell the format of {filename!r}: name the file *.jsonl, *.csv "
                         "or *.parquet, or send a `format` field", field="format")


def _field_problem(record: dict[str, Any], fields: tuple[str, str]) -> str | None:
    for name in fields:
        if name not in record:
            return f"missing field {name!r}"
        value = record[name]
        if not isinstance(value, str) or not value.strip():
            return f"field {name!r} must be a non-empty string"
    return None


def _chat_problem(record: dict[str, Any]) -> str | None:
    if CHAT_FIELD not in record:
        return f"missing field {CHAT_FIELD!r} (the file's first row is a chat row)"
    return message_problem(record[CHAT_FIELD])


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InvalidDataset("not valid UTF-8 text", line=line) from None


def _json_lines(data: bytes) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, the record or what is wrong with the line) of each non-blank line."""
    # Split on "\n" only: str.splitlines() would also split inside strings at U+2028 etc.
    for number, line in enumerate(_decode(data).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, f"not valid JSON ({exc.msg} at column {exc.colno})"
            continue
        yield number, record if isinstance(record, dict) else "expected a JSON object"


def sniff_jsonl(data: bytes) -> dict[str, Any] | None:
    """The first row of a JSONL file, when it is a JSON object (which decides its kind)."""
    for _, record in _json_lines(data):
        return record if isinstance(record, dict) else None
    return None


def _jsonl_rows(data: bytes, fields: tuple[str, str] | None) -> Checked:
    """``fields`` None: chat rows."""
    for number, record in _json_lines(data):
        if isinstance(record, str):
            yield number, record
        else:
            yield number, _chat_problem(record) if fields is None else \
                _field_problem(record, fields)


def _csv_rows(data: bytes, fields: tuple[str, str]) -> Checked:
    reader = csv.reader(io.StringIO(_decode(data), newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidDataset("the file is empty; expected a header line", line=1) from None
    except csv.Error as exc:
        raise InvalidDataset(f"malformed CSV ({exc})", line=reader.line_num) from None
    for name in fields:
        if name not in header:
            raise InvalidDataset(f"header has no column {name!r} (columns: {', '.join(header)})",
                                 line=1)
    start = reader.line_num + 1  # a quoted field may span lines: report where the record starts
    try:
        for row in reader:
            if row:
                if len(row) != len(header):
                    yield start, f"expected {len(header)} fields, found {len(row)}"
                else:
                    yield start, _field_problem(dict(zip(header, row, strict=True)), fields)
            start = reader.line_num + 1
    except csv.Error as exc:
        raise InvalidDataset(f"malformed CSV ({exc})", line=start) from None


def _parquet_rows(data: bytes, fields: tuple[str, str]) -> Checked:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as exc:
        raise InvalidDataset(f"not a readable Parquet file ({exc})") from None
    for name in fields:
        if name not in table.column_names:
            raise InvalidDataset(f"no column {name!r} (columns: {', '.join(table.column_names)})")
        if not (pa.types.is_string(table.schema.field(name).type)
                or pa.types.is_large_string(table.schema.field(name).type)):
            raise InvalidDataset(f"column {name!r} must hold strings, "
                                 f"not {table.schema.field(name).type}")
    columns = [table.column(name).to_pylist() for name in fields]
    for index, values in enumerate(zip(*columns, strict=True), start=1):
        yield index, _field_problem(dict(zip(fields, values, strict=True)), fields)


_READERS = {"jsonl": _jsonl_rows, "csv": _csv_rows, "parquet": _parquet_rows}


def count_valid_rows(data: bytes, fmt: str, *, source_field: str, target_field: str,
                     max_rows: int, kind: str = "pairs") -> int:
    """Validate every row; return the row count. Raises `InvalidDataset` listing the bad lines
    (rows) with what is wrong with each, its message starting with the first of them."""
    if kind == "chat" and fmt != "jsonl":
        raise InvalidDataset("chat data (messages) must be a JSONL file", field="format")
    rows = _jsonl_rows(data, None) if kind == "chat" else \
        _READERS[fmt](data, (source_field, target_field))
    count, problems = 0, []
    for count, (position, problem) in enumerate(rows, start=1):
        if count > max_rows:
            raise InvalidDataset(f"more than {max_rows} rows (GREENTRAINER_MAX_DATASET_ROWS)")
        if problem is not None:
            problems.append({"line" if fmt != "parquet" else "row": position, "message": problem})
    if problems:
        where = "line" if fmt != "parquet" else "row"
        shown = "; ".join(f"{where} {p[where]}: {p['message']}" for p in problems[:3])
        more = f" (and {len(problems) - 3} more bad {where}s)" if len(problems) > 3 else ""
        raise InvalidDataset(shown + more, details=problems[:PROBLEMS_REPORTED])
    if count == 0:
        raise InvalidDataset("the data set has no rows")
    return count
