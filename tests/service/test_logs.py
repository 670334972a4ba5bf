"""Logs: one JSON object per line with the call's extra fields, or one text line with them."""

from __future__ import annotations

import json
import logging

import pytest

from service import logs
from service.logs import JsonFormatter, TextFormatter


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


def test_a_text_line_ends_with_the_extra_fields_that_are_one_value() -> None:
    record = logging.LogRecord("service.access", logging.INFO, __file__, 1, "request by %s",
                               ("team_1",), None)
    record.status = 201
    record.path = "/jobs"
    record.team_id = "team_1"  # the message says it already
    record.data = {"body": "a whole task message"}  # a structure: JSON only
    line = TextFormatter().format(record)
    assert line.endswith(" INFO service.access: request by team_1 status=201 path=/jobs"), line


@pytest.mark.parametrize("fmt, formatter", [("json", JsonFormatter), ("text", TextFormatter)])
def test_configure_sends_every_logger_to_one_handler_and_quiets_alembics_plugin_list(
        fmt: logs.LogFormat, formatter: type[logging.Formatter]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.configure("info", fmt)
        assert [type(h.formatter) for h in root.handlers] == [formatter]
        assert root.level == logging.INFO
        assert not logging.getLogger("alembic.runtime.plugins").isEnabledFor(logging.INFO)
        assert logging.getLogger("alembic.runtime.migration").isEnabledFor(logging.INFO)
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
