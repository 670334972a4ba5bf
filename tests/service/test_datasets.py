"""Data set uploads: JSONL, CSV and Parquet are validated, content-hashed and stored; bad files
get a 4xx that names the offending line (row for Parquet); a team sees only its own."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.service.conftest import UPLOAD_LIMIT_BYTES, Api

ROWS = [{"source": f"article number {i} about the grid", "target": f"summary {i}"}
        for i in range(4)]


def _jsonl(rows: list[dict[str, object]]) -> bytes:
    return "\n".join(json.dumps(r) for r in rows).encode()


def _csv(rows: list[dict[str, str]]) -> bytes:
    lines = ["source,target"] + [f'"{r["source"]}","{r["target"]}"' for r in rows]
    return "\n".join(lines).encode()


def _parquet(rows: list[dict[str, object]]) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(("filename", "encode"), [("a.jsonl", _jsonl), ("a.csv", _csv),
                                                  ("a.parquet", _parquet)])
def test_upload_each_format_is_counted_hashed_and_readable(api: Api, filename: str,
                                                           encode: object) -> None:
    team = api.new_team()
    data = encode(ROWS)  # type: ignore[operator]
    r = api.client.post("/datasets", files={"file": (filename, data)}, headers=team)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["row_count"] == len(ROWS) and body["size_bytes"] == len(data)
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["format"] == filename.rsplit(".", 1)[1]
    assert api.client.get(f"/datasets/{body['id']}", headers=team).json() == body
    listed = api.client.get("/datasets", headers=team).json()
    assert [d["id"] for d in listed["data"]] == [body["id"]]


def test_the_same_bytes_uploaded_twice_give_the_first_data_set(api: Api) -> None:
    team = api.new_team()
    first = api.client.post("/datasets", files={"file": ("x.jsonl", _jsonl(ROWS))}, headers=team)
    again = api.client.post("/datasets", files={"file": ("y.jsonl", _jsonl(ROWS))}, headers=team)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]


def test_field_names_are_configurable_per_upload(api: Api) -> None:
    team = api.new_team()
    rows = [{"document": "long text", "summary": "short"}]
    r = api.client.post("/datasets", files={"file": ("d.jsonl", _jsonl(rows))}, headers=team,
                        data={"source_field": "document", "target_field": "summary"})
    assert r.status_code == 201, r.text
    assert (r.json()["source_field"], r.json()["target_field"]) == ("document", "summary")


BAD_FILES = [
    ("bad.jsonl", _jsonl(ROWS[:2]) + b"\n{not json}\n", "line 3: not valid JSON"),
    ("bad.jsonl", _jsonl([*ROWS[:3], {"source": "only a source"}]),
     "line 4: missing field 'target'"),
    ("bad.jsonl", _jsonl([ROWS[0], {"source": "", "target": "t"}]), "line 2: field 'source'"),
    ("bad.jsonl", _jsonl([ROWS[0]]) + b"\n[1, 2]", "line 2: expected a JSON object"),
    ("bad.jsonl", b'{"source": "a", "target": "\xff"}', "line 1: not valid UTF-8"),
    ("bad.csv", b"source,summary\na,b\n", "line 1: header has no column 'target'"),
    ("bad.csv", b"source,target\na,b\nc,d,e\n", "line 3: expected 2 fields, found 3"),
    ("bad.parquet", _parquet([{"source": "a", "target": "b"}, {"source": "c", "target": None}]),
     "row 2: field 'target'"),
    ("bad.parquet", _parquet([{"source": "a", "label": "b"}]), "no column 'target'"),
    ("bad.parquet", b"PAR1 this is not parquet", "not a readable Parquet file"),
    ("empty.jsonl", b"\n\n", "no rows"),
]


@pytest.mark.parametrize(("filename", "data", "expected"), BAD_FILES,
                         ids=[e for _, _, e in BAD_FILES])
def test_malformed_uploads_are_422_naming_the_line(api: Api, filename: str, data: bytes,
                                                   expected: str) -> None:
    r = api.client.post("/datasets", files={"file": (filename, data)}, headers=api.new_team())
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert expected in error["message"] and error["field"] == "file"


def test_an_upload_over_the_size_limit_is_413(api: Api) -> None:
    row = {"source": "x" * 1000, "target": "y"}
    data = _jsonl([row] * (UPLOAD_LIMIT_BYTES // 1000 + 10))
    r = api.client.post("/datasets", files={"file": ("big.jsonl", data)}, headers=api.new_team())
    assert r.status_code == 413 and r.json()["error"]["field"] == "file"
    assert str(UPLOAD_LIMIT_BYTES) in r.json()["error"]["message"]


def test_an_unknown_format_is_422_naming_the_format(api: Api) -> None:
    team = api.new_team()
    r = api.client.post("/datasets", files={"file": ("data.txt", b"hello")}, headers=team)
    assert r.status_code == 422 and r.json()["error"]["field"] == "format"
    r = api.client.post("/datasets", files={"file": ("d.jsonl", _jsonl(ROWS))}, headers=team,
                        data={"format": "xml"})
    assert r.status_code == 422 and "xml" in r.json()["error"]["message"]


def test_a_missing_file_field_is_422_naming_file(api: Api) -> None:
    r = api.client.post("/datasets", data={"name": "x"}, headers=api.new_team())
    assert r.status_code == 422 and r.json()["error"]["field"] == "file"


def test_another_teams_data_set_is_404_and_not_listed(api: Api) -> None:
    owner, other = api.new_team(), api.new_team()
    dataset = api.upload(owner)
    assert api.client.get(f"/datasets/{dataset}", headers=other).status_code == 404
    assert api.client.get("/datasets", headers=other).json()["data"] == []


@pytest.mark.parametrize("declared_length", [True, False], ids=["content-length", "chunked"])
def test_a_body_far_over_the_limit_is_refused_while_it_streams_in(api: Api,
                                                                  declared_length: bool) -> None:
    chunk = b"x" * 65536
    head = (b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="h.jsonl"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n")
    chunks = [head] + [chunk] * (UPLOAD_LIMIT_BYTES * 4 // len(chunk))
    body: bytes | Iterator[bytes] = b"".join(chunks) if declared_length else iter(chunks)
    headers = {**api.new_team(), "Content-Type": "multipart/form-data; boundary=xyz"}
    r = api.client.post("/datasets", content=body, headers=headers)
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "payload_too_large"
    assert r.json()["error"]["field"] == "file"
