"""Hostile uploads and model names get a clear 4xx naming the problem, never a 500, and never
touch a path outside the server's own storage: huge lines, invalid UTF-8 in every format,
path traversal in file names, a model path that escapes the allowed dirs through a symlink,
and text that is blank once stripped (it would tokenize to nothing)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.service.conftest import UPLOAD_LIMIT_BYTES, Api


def _row(source: str, target: str = "t") -> bytes:
    return json.dumps({"source": source, "target": target}).encode()


def test_a_single_huge_line_under_the_limit_is_accepted_and_counted(hard_api: Api) -> None:
    line = _row("x" * (UPLOAD_LIMIT_BYTES - 200))
    r = hard_api.client.post("/datasets", files={"file": ("big.jsonl", line)},
                             headers=hard_api.new_team())
    assert r.status_code in (200, 201), r.text[:300]
    assert r.json()["row_count"] == 1


def test_a_single_line_over_the_limit_is_413(hard_api: Api) -> None:
    line = _row("x" * (UPLOAD_LIMIT_BYTES + 10))
    r = hard_api.client.post("/datasets", files={"file": ("big.jsonl", line)},
                             headers=hard_api.new_team())
    assert r.status_code == 413, r.text[:300]


@pytest.mark.parametrize(("filename", "data"), [
    ("bad.csv", b"source,target\n\xc3\x28,b\n"),
    ("bad.jsonl", b"\xff\xfe" + _row("a")),
    ("bad.jsonl", b'{"source": "\xed\xa0\x80", "target": "b"}'),  # a UTF-8 encoded surrogate
    ("bad.csv", b"\x00\x01\x02\x03" * 100),
])
def test_invalid_utf8_is_422_naming_the_file(hard_api: Api, filename: str, data: bytes) -> None:
    r = hard_api.client.post("/datasets", files={"file": (filename, data)},
                             headers=hard_api.new_team())
    assert r.status_code == 422, r.text[:300]
    assert r.json()["error"]["field"] == "file"


@pytest.mark.parametrize("source", ["   ", "\t\r", "\u3000\u2003", "\u00a0"])
def test_text_that_is_blank_once_stripped_is_422_naming_the_line(hard_api: Api,
                                                                  source: str) -> None:
    data = _row("fine") + b"\n" + _row(source)
    r = hard_api.client.post("/datasets", files={"file": ("blank.jsonl", data)},
                             headers=hard_api.new_team())
    assert r.status_code == 422, r.text[:300]
    assert "line 2" in r.json()["error"]["message"]


@pytest.mark.parametrize("filename", [
    "../../../../tmp/gt-escape.jsonl", "/tmp/gt-escape-abs.jsonl", "..\\..\\gt-escape.jsonl",
    "a/../../gt-escape.jsonl", ".jsonl", "x" * 300 + ".jsonl", "name\r\nX-Injected: 1.jsonl",
])
def test_a_file_name_never_chooses_where_the_upload_is_stored(hard_api: Api, filename: str,
                                                              tmp_path: Path) -> None:
    before = set(os.listdir("/tmp"))
    r = hard_api.client.post("/datasets", files={"file": (filename, _row(f"q {filename}"))},
                             headers=hard_api.new_team())
    assert r.status_code < 500, r.text[:300]
    created = set(os.listdir("/tmp")) - before
    assert not any(name.startswith("gt-escape") for name in created), created
    data_dir = Path(hard_api.settings.data_dir).resolve()
    for root, _dirs, files in os.walk(data_dir):
        for name in files:
            assert (Path(root) / name).resolve().is_relative_to(data_dir)
    assert "X-Injected" not in r.headers


def test_a_model_dir_that_escapes_through_a_symlink_is_refused(hard_api: Api,
                                                               tmp_path: Path) -> None:
    outside = tmp_path / "outside-model"
    outside.mkdir()
    (outside / "config.json").write_text("{}")
    allowed = hard_api.settings.allowed_model_dirs[0]
    link = allowed / f"link-{tmp_path.name}"
    link.symlink_to(outside, target_is_directory=True)
    team = hard_api.new_team()
    for name in (str(link), str(allowed / ".." / "models" / ".." / ".."), "/etc", "~/x",
                 "file:///etc/passwd", "http://127.0.0.1:1/model", "acme/../../etc"):
        r = hard_api.submit(team, model=name)
        assert r.status_code == 422, (name, r.text[:300])
        assert r.json()["error"]["field"] == "model", name
