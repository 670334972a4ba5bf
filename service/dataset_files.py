"""Validation of uploaded data set files (JSONL, CSV, Parquet): every row needs a non-empty
text ``source`` and ``target`` (names configurable). Errors name the offending line (row for
Parquet, which has no lines)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from service.errors import InvalidDataset

FORMATS = {"jsonl": ".jsonl", "csv": ".csv", "parquet": ".parquet"}
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}


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


def _check_fields(record: dict[str, Any], fields: tuple[str, str], *, line: int | None = None,
                  row: int | None = None) -> None:
    for name in fields:
        if name not in record:
            raise InvalidDataset(f"missing field {name!r}", line=line, row=row)
        value = record[name]
        if not isinstance(value, str) or not value.strip():
            raise InvalidDataset(f"field {name!r} must be a non-empty string", line=line,
                                 row=row)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InvalidDataset("not valid UTF-8 text", line=line) from None


def _jsonl_rows(data: bytes, fields: tuple[str, str]) -> Iterator[int]:
    # Split on "\n" only: str.splitlines() would also split inside strings at U+2028 etc.
    for number, line in enumerate(_decode(data).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidDataset(f"not valid JSON ({exc.msg} at column {exc.colno})",
                                 line=number) from None
        if not isinstance(record, dict):
            raise InvalidDataset("expected a JSON object", line=number)
        _check_fields(record, fields, line=number)
        yield number


def _csv_rows(data: bytes, fields: tuple[str, str]) -> Iterator[int]:
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
                    raise InvalidDataset(f"expected {len(header)} fields, found {len(row)}",
                                         line=start)
                _check_fields(dict(zip(header, row, strict=True)), fields, line=start)
                yield start
            start = reader.line_num + 1
    except csv.Error as exc:
        raise InvalidDataset(f"malformed CSV ({exc})", line=start) from None


def _parquet_rows(data: bytes, fields: tuple[str, str]) -> Iterator[int]:
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
        _check_fields(dict(zip(fields, values, strict=True)), fields, row=index)
        yield index


_READERS = {"jsonl": _jsonl_rows, "csv": _csv_rows, "parquet": _parquet_rows}


def count_valid_rows(data: bytes, fmt: str, *, source_field: str, target_field: str,
                     max_rows: int) -> int:
    """Validate every row; return the row count. Raises `InvalidDataset` naming the line/row."""
    count = 0
    for count, _ in enumerate(_READERS[fmt](data, (source_field, target_field)), start=1):
        if count > max_rows:
            raise InvalidDataset(f"more than {max_rows} rows (GREENTRAINER_MAX_DATASET_ROWS)")
    if count == 0:
        raise InvalidDataset("the data set has no rows")
    return count
