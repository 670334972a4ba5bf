"""The secret that signs the dashboard's session cookie."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from service.settings import DashboardSettings

SECRET_FILE = "session.key"


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
