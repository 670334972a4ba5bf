"""Property tests of data set validation: any valid file is counted exactly, and a single bad
record is reported at the line where it starts, whatever text the other records hold."""

from __future__ import annotations

import csv
import io
import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.dataset_files import count_valid_rows
from service.errors import InvalidDataset

# Any text but NUL (which CSV cannot hold), with something visible in it.
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
               min_size=1, max_size=40).filter(lambda s: s.strip() != "")
ROWS = st.lists(st.tuples(TEXT, TEXT), min_size=1, max_size=25)
LINE_BREAK = re.compile(r"\r\n|\r|\n")  # what an editor (and the csv reader) counts as a line
FIELDS = {"source_field": "source", "target_field": "target", "max_rows": 1000}


def _jsonl(rows: list[tuple[str, str]]) -> bytes:
    return "\n".join(json.dumps({"source": s, "target": t}, ensure_ascii=False)
                     for s, t in rows).encode()


def _csv_records(rows: list[tuple[str, str]]) -> list[str]:
    """The header and each row as written by csv.writer (a quoted field may span lines)."""
    records = []
    for record in [("source", "target"), *rows]:
        buffer = io.StringIO()
        csv.writer(buffer).writerow(record)  # "\r\n" ends a record; fields with \r or \n are quoted
        records.append(buffer.getvalue())
    return records


@settings(max_examples=60, deadline=None, database=None)
@given(ROWS)
def test_every_valid_file_is_counted_exactly(rows: list[tuple[str, str]]) -> None:
    table = pa.Table.from_pylist([{"source": s, "target": t} for s, t in rows])
    parquet = io.BytesIO()
    pq.write_table(table, parquet)
    assert count_valid_rows(_jsonl(rows), "jsonl", **FIELDS) == len(rows)
    assert count_valid_rows("".join(_csv_records(rows)).encode(), "csv", **FIELDS) == len(rows)
    assert count_valid_rows(parquet.getvalue(), "parquet", **FIELDS) == len(rows)


@settings(max_examples=60, deadline=None, database=None)
@given(ROWS, st.data())
def test_a_bad_jsonl_line_is_reported_at_its_number(rows: list[tuple[str, str]],
                                                    data: st.DataObject) -> None:
    bad = data.draw(st.integers(0, len(rows) - 1))
    lines = _jsonl(rows).decode().split("\n")
    lines[bad] = json.dumps({"source": rows[bad][0]})
    with pytest.raises(InvalidDataset, match=f"^line {bad + 1}: missing field 'target'"):
        count_valid_rows("\n".join(lines).encode(), "jsonl", **FIELDS)


@settings(max_examples=60, deadline=None, database=None)
@given(ROWS, st.data())
def test_a_bad_csv_record_is_reported_at_the_line_where_it_starts(
        rows: list[tuple[str, str]], data: st.DataObject) -> None:
    bad = data.draw(st.integers(0, len(rows) - 1))
    rows = [*rows[:bad], (rows[bad][0], ""), *rows[bad + 1:]]
    records = _csv_records(rows)
    start_line = 1 + sum(len(LINE_BREAK.findall(record)) for record in records[:bad + 1])
    with pytest.raises(InvalidDataset, match=f"^line {start_line}: field 'target'"):
        count_valid_rows("".join(records).encode(), "csv", **FIELDS)


def test_too_many_rows_names_the_limit() -> None:
    with pytest.raises(InvalidDataset, match="more than 2 rows"):
        count_valid_rows(_jsonl([("a", "b")] * 3), "jsonl", source_field="source",
                         target_field="target", max_rows=2)
