"""Structured logs: one JSON object per line with the call's extra fields."""

from __future__ import annotations

import json
import logging

from service.logs import JsonFormatter


def test_a_record_becomes_one_json_line_with_its_extra_fields() -> None:
    record = logging.LogRecord("service.access", logging.INFO, __file__, 1, "request %s", ("ok",),
                               None)
    record.job_id = "job_1"
    record.color_message = "\x1b[36mrequest\x1b[0m"
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert "\n" not in line
    assert entry["msg"] == "request ok" and entry["level"] == "info"
    assert entry["logger"] == "service.access" and entry["job_id"] == "job_1"
    assert "color_message" not in entry
