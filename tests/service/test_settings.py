"""Settings come from GREENTRAINER_* variables, with embedded-mode defaults."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from service.settings import Settings


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


def test_docs_list_every_setting() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "service.md").read_text()
    missing = [name for name in Settings.model_fields if f"GREENTRAINER_{name.upper()}" not in docs]
    assert missing == [], f"docs/service.md does not document {missing}"
