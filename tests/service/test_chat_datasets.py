"""Chat data (OpenAI's fine-tuning JSONL) and prompt/completion rows at upload: accepted and
recorded as such, and a bad file refused before any job can use it, with every bad line's
number and problem listed."""

from __future__ import annotations

import json

from tests.service.conftest import Api

CHAT = [{"messages": [{"role": "system", "content": "You summarize."},
                      {"role": "user", "content": f"article {i} about the grid"},
                      {"role": "assistant", "content": f"summary {i}"}]} for i in range(3)]


def _jsonl(rows: list[object]) -> bytes:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows).encode()


def test_a_chat_file_is_accepted_as_chat(api: Api) -> None:
    team = api.new_team()
    r = api.client.post("/datasets", files={"file": ("chat.jsonl", _jsonl(CHAT))}, headers=team)
    assert r.status_code == 201, r.text
    assert (r.json()["kind"], r.json()["row_count"]) == ("chat", 3)


def test_prompt_completion_rows_are_pairs_without_naming_the_fields(api: Api) -> None:
    team = api.new_team()
    rows = [{"prompt": "the long text", "completion": "short"}] * 2
    r = api.client.post("/datasets", files={"file": ("pc.jsonl", _jsonl(rows))}, headers=team)
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["kind"], body["source_field"], body["target_field"]) == \
        ("pairs", "prompt", "completion")


def test_every_bad_chat_line_is_listed_with_its_number_and_no_data_set_is_made(api: Api) -> None:
    team = api.new_team()
    data = _jsonl([CHAT[0], "{broken", {"messages": [{"role": "user", "content": "hi"}]},
                   CHAT[1], {"messages": [{"role": "assistant", "content": "x", "tone": "dry"}]},
                   {"source": "a", "target": "b"}])
    r = api.client.post("/datasets", files={"file": ("chat.jsonl", data)}, headers=team)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_dataset" and error["field"] == "file"
    assert error["message"].startswith("line 2: not valid JSON")
    assert [(d["line"], d["message"]) for d in error["details"]] == [
        (2, "not valid JSON (Expecting property name enclosed in double quotes at column 2)"),
        (3, "no assistant message to train on"),
        (5, "messages[0] has unknown key(s) ['tone']"),
        (6, "missing field 'messages' (the file's first row is a chat row)"),
    ]
    assert api.client.get("/datasets", headers=team).json()["data"] == []


def test_bad_pair_lines_are_all_listed_too(api: Api) -> None:
    team = api.new_team()
    rows = [{"source": "a", "target": "b"}, {"source": "a"}, {"source": "", "target": "b"}]
    r = api.client.post("/datasets", files={"file": ("p.jsonl", _jsonl(rows))}, headers=team)
    assert r.status_code == 422
    assert [(d["line"], d["message"]) for d in r.json()["error"]["details"]] == [
        (2, "missing field 'target'"), (3, "field 'source' must be a non-empty string")]


def test_chat_rows_in_a_csv_file_are_pairs_and_fail_on_their_fields(api: Api) -> None:
    team = api.new_team()
    r = api.client.post("/datasets", files={"file": ("c.csv", b"messages\n[]\n")}, headers=team)
    assert r.status_code == 422 and "no column 'source'" in r.json()["error"]["message"]
