"""Dashboard settings (environment, prefix GREENTRAINER_), read next to the service settings."""

from __future__ import annotations

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
    """The configured secret, else the one in ``<data_dir>/session.key`` (created 0600)."""
    if settings.session_secret is not None:
        return settings.session_secret.get_secret_value()
    path = Path(data_dir) / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(path, "x", encoding="ascii") as handle:  # first process wins the race
            path.chmod(0o600)
            handle.write(secrets.token_urlsafe(32))
    except FileExistsError:
        pass
    return path.read_text(encoding="ascii").strip()
