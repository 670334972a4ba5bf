"""Dashboard settings (environment, prefix GREENTRAINER_), read next to the service settings."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SECRET_FILE = "session.key"


class DashboardSettings(BaseSettings):
    """Each field reads GREENTRAINER_<FIELD IN UPPER CASE>, e.g. GREENTRAINER_POOL_REGION."""

    model_config = SettingsConfigDict(env_prefix="GREENTRAINER_", extra="ignore")

    session_secret: SecretStr | None = Field(
        default=None, description="Signs the session cookie; unset = a random secret kept in "
        "<data_dir>/session.key (all API processes on one data dir share it).")
    session_max_age_s: int = Field(default=12 * 3600, gt=0,
                                   description="Seconds a sign-in lasts.")
    cookie_secure: bool = Field(default=False, description="Send the cookie over HTTPS only.")
    poll_seconds: float = Field(default=1.0, gt=0,
                                description="How often the live pages ask for updates.")


def session_secret(settings: DashboardSettings, data_dir: Path) -> str:
    """The configured secret, else the one in ``<data_dir>/session.key`` (created 0600).
    Several processes starting at once agree: the file appears complete (written aside, then
    hard-linked into place) and the first link wins."""
    if settings.session_secret is not None:
        return settings.session_secret.get_secret_value()
    path = Path(data_dir) / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        aside = path.with_name(f".{SECRET_FILE}.{secrets.token_hex(6)}")
        aside.touch(mode=0o600)
        aside.write_text(secrets.token_urlsafe(32), encoding="ascii")
        try:
            os.link(aside, path)
        except FileExistsError:
            pass
        finally:
            aside.unlink()
    return path.read_text(encoding="ascii").strip()
