"""Every setting of the service, from `GREENTRAINER_*` environment variables (pydantic-settings).

The defaults are the embedded mode: a SQLite file and uploaded data under ``./var/``, no broker
(the worker picks its in-process transport), no admin key until `greentrainer up` creates one.
Production sets ``GREENTRAINER_DATABASE_URL`` to Postgres and ``GREENTRAINER_BROKER_URL`` to Redis.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.logs import LogFormat

MIB = 1024 * 1024


class Settings(BaseSettings):
    """Service settings; every field maps to ``GREENTRAINER_<FIELD NAME IN CAPITALS>``."""

    model_config = SettingsConfigDict(env_prefix="GREENTRAINER_", extra="ignore")

    data_dir: Path = Field(
        default=Path("var"), description="Uploaded data sets, artifacts, embedded DB."
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL; empty = SQLite file <data_dir>/greentrainer.sqlite.",
    )
    broker_url: str | None = Field(
        default=None, description="Celery broker (redis://...); unset = embedded mode, no broker."
    )
    admin_key: SecretStr | None = Field(
        default=None,
        description="Key that manages teams, in addition to admin keys stored in the DB.",
    )
    max_upload_bytes: int = Field(
        default=100 * MIB, gt=0, description="Largest accepted data set file."
    )
    max_dataset_rows: int = Field(default=1_000_000, gt=0, description="Most rows in one data set.")
    dataset_source_field: str = Field(
        default="source", min_length=1, description="Input text column."
    )
    dataset_target_field: str = Field(
        default="target", min_length=1, description="Output text column."
    )
    allowed_model_dirs: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Directories under which a job may name a local model path "
        "(JSON list or os.pathsep-separated).",
    )
    hf_cache_dir: Path | None = Field(
        default=None,
        description="Hugging Face hub cache searched for model ids; unset = HF default.",
    )
    host: str = Field(default="127.0.0.1", description="Address `greentrainer serve` binds.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port `greentrainer serve` binds.")
    log_level: str = Field(default="INFO", description="Python log level of the service loggers.")
    log_format: LogFormat = Field(
        default="json", description="`json` (one object per line) or `text`; `up` defaults to "
        "text.")
    sse_poll_seconds: float = Field(
        default=1.0, gt=0, description="How often an event stream looks for new job events."
    )
    db_pool_size: int = Field(
        default=10, ge=1, description="DB connections per process, each opened when first needed and then "
        "kept; requests beyond them wait for one (up to db_pool_timeout_seconds)."
    )
    db_pool_timeout_seconds: float = Field(
        default=10.0, gt=0, description="How long a request waits for a free DB connection "
        "before it is answered 503."
    )
    signin_failure_burst: int = Field(
        default=20, ge=1, description="Wrong API keys one client address may present in a burst "
        "(API or dashboard sign-in) before it is answered 429."
    )
    signin_failure_refill_seconds: float = Field(
        default=3.0, gt=0, description="One more failed sign-in is allowed per address after "
        "this many seconds."
    )

    @field_validator("allowed_model_dirs", mode="before")
    @classmethod
    def _split_dirs(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return []
            if text.startswith("["):
                return json.loads(text)
            return [part for part in text.split(os.pathsep) if part]
        return value

    @model_validator(mode="after")
    def _default_database(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.data_dir / 'greentrainer.sqlite').resolve()}"
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
