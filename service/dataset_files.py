"""Validation of uploaded data set files (JSONL, CSV, Parquet), before any job can use them.

Two kinds of rows: pairs, where every row needs a non-empty text ``source`` and ``target``
(names configurable; a JSONL file of ``prompt``/``completion`` rows is read as such when no
field names are given), and chat, OpenAI's fine-tuning JSONL (``{"messages": [...]}``, a JSONL
file whose first row has ``messages``), checked by the core's own rule
(`greentrainer_core.chat_messages`). Every bad line is reported (the first
``PROBLEMS_REPORTED`` of them, each with its line number, or row for Parquet, which has no
lines) in one `InvalidDataset`.

Every bound is checked while the file is read, never after: rows (``max_rows``), the bytes of
one cell (``max_cell_bytes``) and the bytes the file decodes to (``max_decoded_bytes``; Parquet
is compressed, a 10 KB file can hold 300 MiB of text). Text is read one line at a time and
Parquet one batch at a time (after its metadata's row count and uncompressed size were checked),
so that a 1 GB file is validated in the memory of its longest line or batch. The API runs this in a
bounded subprocess (`service.dataset_check`), never in its own memory."""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from greentrainer_core.chat_messages import message_problem
from service.errors import InvalidDataset, PayloadTooLarge

FORMATS = {"jsonl": ".jsonl", "csv": ".csv", "parquet": ".parquet"}
PARQUET_BATCH_ROWS = 1024  # rows decoded at once: a row group is never decoded whole
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
KINDS = ("pairs", "chat")
CHAT_FIELD = "messages"
PROMPT_COMPLETION = ("prompt", "completion")  # OpenAI's legacy format, a pair by another name
PROBLEMS_REPORTED = 20
SNIFF_BYTES = 16 << 20  # the most of a JSONL file's first row the API reads to tell its kind

_LONE_CR, _LONE_CR_BYTES = re.compile(r"(?<=\r)(?!\n)"), re.compile(rb"\r(?!\n)")

# A reader yields (line or row number, what is wrong with it or None).
Checked = Iterator[tuple[int, str | None]]


def detect_format(filename: str | None, declared: str | None) -> str:
    if declared:
        fmt = declared.lower()
        if fmt not in FORMATS:
            raise InvalidDataset(f"unknown format {declared!r}; use one of {', '.join(FORMATS)}",
                                 field="format")
        return fmt
    for suffix, fmt in _SUFFIXES.items():
        if filename and filename.lower().endswith(suffix):
            return fmt
    raise InvalidDataset(f"cannot tell the format of {filename!r}: name it *.jsonl, *.csv "
                         "or *.parquet, or send a `format` field", field="format")


@dataclass(frozen=True)
class Limits:
    """What one upload may hold (GREENTRAINER_MAX_DATASET_ROWS, _MAX_CELL_BYTES, _MAX_DECODED_BYTES)."""

    max_rows: int
    max_cell_bytes: int = 1 << 20
    max_decoded_bytes: int = 1 << 30


def _field_problem(record: dict[str, Any], fields: tuple[str, str], limits: Limits) -> str | None:
    for name in fields:
        if name not in record:
            return f"missing field {name!r}"
        value = record[name]
        if not isinstance(value, str) or not value.strip():
            return f"field {name!r} must be a non-empty string"
        if len(value) > limits.max_cell_bytes // 4 and \
                len(value.encode("utf-8", "surrogatepass")) > limits.max_cell_bytes:
            return f"field {name!r} is longer than {limits.max_cell_bytes} bytes " \
                   "(GREENTRAINER_MAX_CELL_BYTES)"
    return None


def _chat_problem(record: dict[str, Any]) -> str | None:
    if CHAT_FIELD not in record:
        return f"missing field {CHAT_FIELD!r} (the file's first row is a chat row)"
    return message_problem(record[CHAT_FIELD])


def _text_lines(source: BinaryIO, *, lone_cr_ends_lines: bool = False) -> Iterator[tuple[int, str]]:
    """(line number, text with its line ending) of each line of ``source``, decoded one line at a
    time (a byte-order mark is skipped at the start): the file is never held whole. Lines end at
    "\n" (str.splitlines() would also split inside strings at U+2028 etc.), and also at a lone
    "\r" with ``lone_cr_ends_lines`` (as the csv module counts lines)."""
    number = 0
    for raw in source:
        try:
            text = raw.decode("utf-8-sig" if number == 0 else "utf-8")
        except UnicodeDecodeError as exc:
            before = len(_LONE_CR_BYTES.findall(raw[:exc.start])) if lone_cr_ends_lines else 0
            raise InvalidDataset("not valid UTF-8 text", line=number + 1 + before) from None
        for line in _LONE_CR.split(text) if lone_cr_ends_lines else (text,):
            if line:
                number += 1
                yield number, line


def _json_lines(source: BinaryIO) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, the record or what is wrong with the line) of each non-blank line."""
    for number, line in _text_lines(source):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, f"not valid JSON ({exc.msg} at column {exc.colno})"
            continue
        except RecursionError:
            yield number, "JSON nested too deeply"
            continue
        except ValueError as exc:  # an integer of more than sys.get_int_max_str_digits() digits
            yield number, (f"an integer has more than {sys.get_int_max_str_digits()} digits"
                           if "integer string conversion" in str(exc)
                           else f"not loadable JSON ({exc})")
            continue
        yield number, record if isinstance(record, dict) else "expected a JSON object"


def sniff_jsonl(source: BinaryIO) -> dict[str, Any] | None:
    """The first row of a JSONL file, when it is a JSON object (which decides its kind). At most
    `SNIFF_BYTES` of it are read (this runs in the API's process): a longer first row, or one
    that is not UTF-8, is not sniffed (None), and the validation says what is wrong with it."""
    while line := source.readline(SNIFF_BYTES):
        if len(line) == SNIFF_BYTES and not line.endswith(b"\n"):
            return None
        if line.strip():
            try:
                _, record = next(_json_lines(io.BytesIO(line)))
            except (InvalidDataset, StopIteration):
                return None
            return record if isinstance(record, dict) else None
    return None


def _jsonl_rows(source: BinaryIO, fields: tuple[str, str] | None, limits: Limits) -> Checked:
    """``fields`` None: chat rows."""
    for number, record in _json_lines(source):
        if isinstance(record, str):
            yield number, record
        else:
            yield number, _chat_problem(record) if fields is None else \
                _field_problem(record, fields, limits)


def _csv_rows(source: BinaryIO, fields: tuple[str, str], limits: Limits) -> Checked:
    csv.field_size_limit(limits.max_cell_bytes)  # a longer field is a csv.Error, named below
    reader = csv.reader(line for _, line in _text_lines(source, lone_cr_ends_lines=True))
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
                    yield start, _field_problem(dict(zip(header, row, strict=True)), fields,
                                                limits)
            start = reader.line_num + 1
    except csv.Error as exc:
        raise InvalidDataset(f"malformed CSV ({exc})", line=start) from None


def _parquet_rows(source: BinaryIO, fields: tuple[str, str], limits: Limits) -> Checked:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(source)
        meta, schema = parquet.metadata, parquet.schema_arrow
    except (pa.ArrowException, OSError) as exc:
        raise InvalidDataset(f"not a readable Parquet file ({exc})") from None
    for name in fields:
        if name not in schema.names:
            raise InvalidDataset(f"no column {name!r} (columns: {', '.join(schema.names)})")
        kind = schema.field(name).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise InvalidDataset(f"column {name!r} must hold strings, not {kind}")
    if meta.num_rows > limits.max_rows:
        raise InvalidDataset(f"more than {limits.max_rows} rows (GREENTRAINER_MAX_DATASET_ROWS)")
    _decoded(sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)), limits)
    _cells_fit(meta, fields, limits)
    index, decoded = 0, 0
    try:
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=list(fields)):
            decoded += batch.nbytes  # the metadata may understate it: count what is decoded
            _decoded(decoded, limits)
            for values in zip(*(batch.column(name).to_pylist() for name in fields), strict=True):
                index += 1
                yield index, _field_problem(dict(zip(fields, values, strict=True)), fields, limits)
    except UnicodeDecodeError:  # a string column holding bytes that are not UTF-8
        raise InvalidDataset("not valid UTF-8 text", row=index + 1) from None
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InvalidDataset(f"not a readable Parquet file ({exc})", row=index + 1) from None


def _cells_fit(meta: Any, fields: tuple[str, str], limits: Limits) -> None:
    """From the metadata, before decoding: a column chunk whose uncompressed text is more than
    max_cell_bytes per row holds at least one cell over the limit (one 300 MiB cell)."""
    for group in range(meta.num_row_groups):
        chunks = meta.row_group(group)
        for column in range(chunks.num_columns):
            chunk = chunks.column(column)
            if chunk.path_in_schema in fields and chunk.total_uncompressed_size > \
                    max(chunks.num_rows, 1) * limits.max_cell_bytes + 64 * 1024:
                raise InvalidDataset(f"column {chunk.path_in_schema!r} of row group {group + 1} "
                                     f"holds a value longer than {limits.max_cell_bytes} bytes "
                                     "(GREENTRAINER_MAX_CELL_BYTES)")


def _decoded(size: int, limits: Limits) -> None:
    if size > limits.max_decoded_bytes:
        raise PayloadTooLarge(f"the file decodes to more than {limits.max_decoded_bytes} bytes "
                              "(GREENTRAINER_MAX_DECODED_BYTES)", field="file")


_READERS = {"jsonl": _jsonl_rows, "csv": _csv_rows, "parquet": _parquet_rows}


def _size(source: BinaryIO) -> int:
    end = source.seek(0, io.SEEK_END)
    source.seek(0)
    return end


def count_valid_rows(data: bytes | BinaryIO, fmt: str, *, source_field: str, target_field: str,
                     max_rows: int, kind: str = "pairs", max_cell_bytes: int = Limits.max_cell_bytes,
                     max_decoded_bytes: int = Limits.max_decoded_bytes) -> int:
    """Validate every row of ``data`` (bytes, or a seekable binary file read a line or a Parquet
    batch at a time); return the row count. Raises `InvalidDataset` listing the bad lines
    (rows) with what is wrong with each, its message starting with the first of them;
    `PayloadTooLarge` for a file that decodes to more than ``max_decoded_bytes``."""
    if kind == "chat" and fmt != "jsonl":
        raise InvalidDataset("chat data (messages) must be a JSONL file", field="format")
    limits = Limits(max_rows, max_cell_bytes, max_decoded_bytes)
    source = io.BytesIO(data) if isinstance(data, bytes) else data
    _decoded(_size(source), limits)  # text formats decode to their own size
    rows = _jsonl_rows(source, None, limits) if kind == "chat" else \
        _READERS[fmt](source, (source_field, target_field), limits)
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
