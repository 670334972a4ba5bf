"""Settings come from GREENTRAINER_* variables, with embedded-mode defaults."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from greentrainer.cli import settings_error
from greentrainer_carbon.config import build_chain
from service.settings import LEGACY_NAMES, Settings, settings_reference, settings_table


def test_defaults_are_the_embedded_mode(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("GREENTRAINER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.database_url == f"sqlite:///{tmp_path / 'var' / 'greentrainer.sqlite'}"
    assert settings.broker_url is None and settings.admin_key is None
    assert settings.is_sqlite


def test_environment_variables_use_the_greentrainer_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GREENTRAINER_DATABASE_URL", "postgresql+psycopg://db/gt")
    monkeypatch.setenv("GREENTRAINER_BROKER_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("GREENTRAINER_ADMIN_KEY", "s3cret")
    monkeypatch.setenv("GREENTRAINER_MAX_UPLOAD_BYTES", "1234")
    monkeypatch.setenv("GREENTRAINER_DATASET_SOURCE_FIELD", "document")
    settings = Settings()
    assert settings.database_url == "postgresql+psycopg://db/gt" and not settings.is_sqlite
    assert settings.broker_url == "redis://127.0.0.1:6379/0"
    assert settings.admin_key is not None and settings.admin_key.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)
    assert settings.max_upload_bytes == 1234 and settings.dataset_source_field == "document"


@pytest.mark.parametrize("raw", ["/models/a:/models/b", '["/models/a", "/models/b"]'])
def test_allowed_model_dirs_accept_a_path_list_or_json(monkeypatch: pytest.MonkeyPatch,
                                                       raw: str) -> None:
    monkeypatch.setenv("GREENTRAINER_ALLOWED_MODEL_DIRS", raw)
    assert Settings().allowed_model_dirs == [Path("/models/a"), Path("/models/b")]


def test_a_bad_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GREENTRAINER_MAX_UPLOAD_BYTES", "-5")
    with pytest.raises(ValueError, match="max_upload_bytes"):
        Settings()


def test_the_carbon_section_builds_a_chain_with_static_last_and_hides_secrets(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("GREENTRAINER_CARBON__PROVIDERS", "electricitymaps,trace")
    monkeypatch.setenv("GREENTRAINER_CARBON__ELECTRICITYMAPS_TOKEN", "tok-123")
    settings = Settings()
    chain = build_chain(settings.carbon)
    assert [p.name for p in chain.providers] == [
        "electricitymaps:GB",
        "trace:gb-2020",
        "codecarbon-static:GBR",
    ]
    assert "tok-123" not in repr(settings) and "tok-123" not in repr(chain.providers)
    monkeypatch.setenv("GREENTRAINER_CARBON__PROVIDERS", "gb,nonsense")
    with pytest.raises(ValueError, match="nonsense"):
        Settings()


def test_sections_read_nested_names_and_the_old_flat_names_still_work(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("GREENTRAINER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GREENTRAINER_POOL__LEASE_SECONDS", "7")
    monkeypatch.setenv("GREENTRAINER_HEARTBEAT_SECONDS", "0.5")  # the old flat name
    monkeypatch.setenv("GREENTRAINER_DASHBOARD__POLL_SECONDS", "3")
    monkeypatch.setenv("GREENTRAINER_CARBON_PROVIDERS", "trace")  # old name ...
    monkeypatch.setenv("GREENTRAINER_CARBON__PROVIDERS", "gb")  # ... the new one wins
    settings = Settings()
    assert settings.pool.lease_seconds == 7 and settings.pool.heartbeat_seconds == 0.5
    assert settings.dashboard.poll_seconds == 3 and settings.carbon.providers == "gb"


def test_a_bad_old_name_is_reported_with_its_new_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GREENTRAINER_POOL__MAX_ATTEMPTS", raising=False)
    monkeypatch.setenv("GREENTRAINER_MAX_ATTEMPTS", "many")
    with pytest.raises(ValueError) as caught:
        Settings()
    message = settings_error(caught.value)
    assert message is not None and message.startswith(
        "GREENTRAINER_MAX_ATTEMPTS (now GREENTRAINER_POOL__MAX_ATTEMPTS)='many'"), message


def test_docs_table_is_the_one_the_class_makes() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "settings.md").read_text()
    assert settings_table() in docs, "docs/settings.md: paste service.settings.settings_table()"
    variables = [row[0] for row in settings_reference()]
    assert len(variables) == len(set(variables)) and "GREENTRAINER_POOL__LEASE_SECONDS" in variables
    assert {old for *_, old in settings_reference() if old} == set(LEGACY_NAMES)
