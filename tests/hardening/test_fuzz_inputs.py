"""Property-based fuzz (hypothesis) of what users send: the upload parsers (JSONL, CSV, Parquet)
and the job body. Any input either passes or is refused with the service's own error (a 4xx
naming the problem); no other exception escapes, and the API never answers a 5xx."""

from __future__ import annotations

import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.dataset_files import count_valid_rows
from service.errors import ServiceError
from tests.service.conftest import Api

FUZZ = settings(max_examples=150, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck))
FIELDS = {"source_field": "source", "target_field": "target"}

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20)
records = st.one_of(json_values, st.fixed_dictionaries(
    {"source": json_values, "target": json_values}))


def _parses_or_refuses(data: bytes, fmt: str) -> None:
    try:
        rows = count_valid_rows(data, fmt, max_rows=1000, max_cell_bytes=4096,
                                max_decoded_bytes=1 << 20, **FIELDS)
    except ServiceError as exc:
        assert 400 <= exc.status_code < 500, exc
        assert exc.message
        return
    assert rows >= 1


@FUZZ
@given(st.lists(records, min_size=1, max_size=5), st.integers(0, 3000), st.integers(1, 6000))
def test_jsonl_lines_parse_or_are_refused_naming_the_line(rows: list[Any], depth: int,
                                                         digits: int) -> None:
    lines = [json.dumps(r) for r in rows]
    lines.append('{"source": "a", "target": "b", "x": ' + "[" * depth + "]" * depth + "}")
    lines.append('{"source": "a", "target": "b", "n": ' + "7" * digits + "}")
    _parses_or_refuses("\n".join(lines).encode(), "jsonl")


@FUZZ
@given(st.binary(max_size=400))
def test_any_bytes_as_jsonl_or_csv_or_parquet_are_refused_cleanly(data: bytes) -> None:
    for fmt in ("jsonl", "csv", "parquet"):
        _parses_or_refuses(data, fmt)


@FUZZ
@given(st.lists(st.lists(st.text(max_size=30), min_size=1, max_size=4), min_size=1, max_size=6),
       st.sampled_from(["source,target", "target,source,x", "x", ""]))
def test_csv_records_parse_or_are_refused_naming_the_line(rows: list[list[str]],
                                                          header: str) -> None:
    text = header + "\n" + "\n".join(",".join(json.dumps(c) for c in row) for row in rows)
    _parses_or_refuses(text.encode(), "csv")


def _parquet(values: list[str | None]) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.table({"source": values, "target": ["t"] * len(values)}), buffer)
    return buffer.getvalue()


@FUZZ
@given(st.lists(st.one_of(st.none(), st.text(max_size=50)), min_size=1, max_size=8),
       st.integers(0, 2000), st.binary(min_size=1, max_size=8))
def test_parquet_files_and_corrupted_ones_parse_or_are_refused(
        values: list[str | None], at: int, junk: bytes) -> None:
    data = _parquet(values)
    _parses_or_refuses(data, "parquet")
    at %= len(data)
    _parses_or_refuses(data[:at] + junk + data[at + len(junk):], "parquet")


job_bodies = st.fixed_dictionaries({
    "model": st.one_of(st.just("smollm2-135m-instruct"), st.text(max_size=10)),
    "training_dataset": st.text(max_size=10),
}, optional={
    "method": json_values, "hyperparameters": st.one_of(json_values, st.dictionaries(
        st.sampled_from(["epochs", "batch_size", "learning_rate", "max_length", "seed"]),
        scalars)),
    "rho_policy": st.one_of(json_values, st.fixed_dictionaries({
        "type": st.sampled_from(["fixed", "schedule", "carbon-aware", "x"]),
        "rho": scalars, "rho_min": scalars, "rho_max": scalars, "region": json_values,
        "deadline": st.one_of(scalars, st.datetimes().map(lambda d: d.isoformat()))})),
    "gpu_class": json_values,
})


@settings(max_examples=120, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(job_bodies)
def test_no_job_body_gets_a_5xx(hard_api: Api, body: dict[str, Any]) -> None:
    team = FUZZ_TEAM.setdefault("team", hard_api.new_team())
    r = hard_api.client.post("/jobs", content=json.dumps(body).encode(),
                             headers={**team, "Content-Type": "application/json"})
    assert r.status_code < 500, r.text[:300]
    if r.status_code == 422:
        assert r.json()["error"]["message"]


FUZZ_TEAM: dict[str, dict[str, str]] = {}
