"""Every setting of every process, from `GREENTRAINER_*` environment variables: one `Settings`
(pydantic-settings) with nested sections, read once per process (`get_settings`).

    GREENTRAINER_<FIELD>               the service itself: database, broker, uploads, API, logs
    GREENTRAINER_CARBON__<FIELD>       carbon-intensity providers (greentrainer_carbon.config)
    GREENTRAINER_POOL__<FIELD>         leases, heartbeats, retries, the dispatcher's pace
    GREENTRAINER_DASHBOARD__<FIELD>    the dashboard's sign-in and pages
    GREENTRAINER_STORAGE__<FIELD>      data sets, checkpoints, artifacts: local disk or S3

The defaults are the embedded mode: a SQLite file and uploaded data under ``./var/``, no broker
(the worker picks its in-process transport), no admin key until `greentrainer up` creates one.
Production sets ``GREENTRAINER_DATABASE_URL`` to Postgres and ``GREENTRAINER_BROKER_URL`` to Redis.
The flat names of the sections' settings that earlier releases read (``GREENTRAINER_LEASE_SECONDS``
for ``GREENTRAINER_POOL__LEASE_SECONDS``, ...) still work: `LEGACY_NAMES` maps each to its new
name, and the new name wins when both are set. docs/settings.md lists them all.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from greentrainer_carbon.config import CarbonSettings
from greentrainer_carbon.readings import MAX_FORECAST_HOURS
from service.logs import LogFormat

MIB = 1024 * 1024
MAX_GPUS_PER_JOB = 64  # the most devices of one worker a job may ask for under any settings

ENV_PREFIX = "GREENTRAINER_"
NESTED = "__"

# The flat variable names of earlier releases -> (section, field) they now set.
LEGACY_NAMES: dict[str, tuple[str, str]] = {
    **{f"GREENTRAINER_{old}": ("carbon", new) for old, new in {
        "CARBON_PROVIDERS": "providers", "CARBON_CACHE_TTL_S": "cache_ttl_s",
        "HTTP_TIMEOUT_S": "http_timeout_s", "HTTP_MAX_RETRIES": "http_max_retries",
        "HTTP_BACKOFF_S": "http_backoff_s", "GB_API_BASE_URL": "gb_api_base_url",
        "GB_REGION_ID": "gb_region_id", "ELECTRICITYMAPS_BASE_URL": "electricitymaps_base_url",
        "ELECTRICITYMAPS_TOKEN": "electricitymaps_token",
        "ELECTRICITYMAPS_ZONE": "electricitymaps_zone", "WATTTIME_BASE_URL": "watttime_base_url",
        "WATTTIME_USERNAME": "watttime_username", "WATTTIME_PASSWORD": "watttime_password",
        "WATTTIME_REGION": "watttime_region", "STATIC_COUNTRY_ISO3": "static_country_iso3",
        "CARBON_TRACE": "trace", "POOL_REGION": "pool_region",
        "POOL_FORECAST_HOURS": "pool_forecast_hours"}.items()},
    **{f"GREENTRAINER_{name.upper()}": ("pool", name) for name in (
        "lease_seconds", "heartbeat_seconds", "pickup_seconds", "max_attempts",
        "visibility_timeout_seconds", "dispatch_interval_seconds", "default_epoch_seconds")},
    **{f"GREENTRAINER_{name.upper()}": ("dashboard", name) for name in (
        "session_secret", "session_max_age_s", "cookie_secure", "poll_seconds")},
}


def env_name(*loc: str | int) -> str:
    """The variable that sets the field at ``loc`` (("pool", "lease_seconds") ->
    GREENTRAINER_POOL__LEASE_SECONDS)."""
    return ENV_PREFIX + NESTED.join(str(part) for part in loc).upper()


class _LegacyNames(PydanticBaseSettingsSource):
    """Reads the flat names of `LEGACY_NAMES` into their sections; below the environment source,
    so a new name that is set wins."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, dict[str, str]] = {}
        for old, (section, name) in LEGACY_NAMES.items():
            if old in os.environ and env_name(section, name) not in os.environ:
                values.setdefault(section, {})[name] = os.environ[old]
        return values

class PoolSettings(BaseModel):
    """Leases, heartbeats, retries and the dispatcher's pace: GREENTRAINER_POOL__<FIELD>
    (docs/worker.md explains each value)."""

    model_config = ConfigDict(extra="forbid")

    lease_seconds: float = Field(
        default=60.0, gt=0, description="How long a worker's lease on a running job lasts "
        "without renewal; a job whose lease expired is re-queued by the reconciler."
    )
    heartbeat_seconds: float = Field(
        default=2.0, gt=0, description="How often a worker renews its lease and slot heartbeat "
        "and looks for a cancel (the cancel latency)."
    )
    pickup_seconds: float = Field(
        default=120.0, gt=0, description="How long a dispatched job may wait for a worker to "
        "take it before the reconciler re-queues it (a message the broker lost)."
    )
    max_attempts: int = Field(
        default=3, ge=1, description="Tries of one job (worker crashes, transient errors) "
        "before it is failed."
    )
    visibility_timeout_seconds: int = Field(
        default=7 * 24 * 3600, gt=0, description="Redis visibility timeout: above the longest "
        "job, so that Redis never hands a running job to a second worker."
    )
    dispatch_interval_seconds: float = Field(
        default=2.0, gt=0, description="How often `greentrainer scheduler --dispatch` runs a "
        "reconcile, plan and dispatch pass."
    )
    default_epoch_seconds: float = Field(
        default=1800.0, gt=0, description="Epoch duration assumed for green-window planning "
        "until the pool has measured epochs of the job's model."
    )
    gpu_classes: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="GPU classes a job may ask for besides `any` (JSON "
        "list or comma-separated, the workers' --gpu-class); unset = any lowercase name.")
    max_deadline_days: float = Field(
        default=30.0, gt=0, le=MAX_FORECAST_HOURS / 24, description="Furthest a job's deadline "
        "may lie ahead (a later one is answered 422 naming this limit); at most the forecast's "
        f"reach, {MAX_FORECAST_HOURS // 24} days (docs/reliability.md)."
    )
    max_gpus_per_job: int = Field(default=8, ge=1, le=MAX_GPUS_PER_JOB, description="Most devices a job may ask for (`gpus`; "
                                  "more is answered 422): those of the pool's largest worker (`greentrainer worker --gpus ...`).")

    @field_validator("gpu_classes", mode="before")
    @classmethod
    def _split_classes(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            return json.loads(text) if text.startswith("[") else \
                [part.strip() for part in text.split(",") if part.strip()]
        return value


class StorageSettings(BaseModel):
    """Where data sets, checkpoints and artifacts live: GREENTRAINER_STORAGE__<FIELD>
    (docs/deploy.md). ``local`` keeps them under <data_dir>/blobs (one machine); ``s3`` puts them
    in an S3-protocol bucket (MinIO, AWS S3, ...) that every worker machine reaches."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["local", "s3"] = Field(
        default="local", description="`local`: files under <data_dir>/blobs; `s3`: the bucket "
        "below, shared by the API and every worker machine.")
    bucket: str = Field(default="greentrainer", min_length=3, description="S3 bucket (created "
                        "on first use when missing).")
    prefix: str = Field(default="", description="Key prefix inside the bucket (several "
                        "deployments may share one bucket).")
    endpoint_url: str | None = Field(default=None, description="S3 endpoint, e.g. "
                                     "http://minio:9000; unset = AWS S3.")
    public_endpoint_url: str | None = Field(
        default=None, description="The endpoint clients reach for presigned downloads when it "
        "differs from endpoint_url (a private MinIO address behind a public one).")
    region: str = Field(default="us-east-1", description="S3 region.")
    access_key_id: SecretStr | None = Field(default=None, description="S3 access key; unset = "
                                            "boto3's default chain (env, instance role).")
    secret_access_key: SecretStr | None = Field(default=None, description="S3 secret key.")
    cache_dir: Path | None = Field(default=None, description="A worker's local cache of "
                                   "downloaded objects; unset = <data_dir>/cache.")
    part_size_mib: int = Field(default=16, ge=5, le=5 * 1024, description="Multipart part size; "
                               "files above it are uploaded in parts of this size.")
    connect_timeout_s: float = Field(default=5.0, gt=0, description="S3 connect timeout.")
    read_timeout_s: float = Field(default=60.0, gt=0, description="S3 read timeout: a read "
                                  "stalled this long is retried (downloads resume where they "
                                  "stopped).")
    max_attempts: int = Field(default=5, ge=1, description="Tries of one S3 request (5xx, "
                              "connection errors, timeouts) before the step fails.")
    artifact_download: Literal["proxy", "redirect"] = Field(
        default="proxy", description="How the API serves an artifact from S3: `proxy` streams "
        "it through the API; `redirect` answers 307 to a presigned URL.")
    presign_expiry_s: int = Field(default=3600, gt=0, le=7 * 24 * 3600,
                                  description="Lifetime of a presigned download URL.")


class DashboardSettings(BaseModel):
    """The dashboard's sign-in and pages: GREENTRAINER_DASHBOARD__<FIELD>."""

    model_config = ConfigDict(extra="forbid")

    session_secret: SecretStr | None = Field(
        default=None, description="Signs the session cookie; unset = a random secret kept in "
        "<data_dir>/session.key (all API processes on one data dir share it).")
    session_max_age_s: int = Field(default=12 * 3600, gt=0,
                                   description="Seconds a sign-in lasts.")
    cookie_secure: bool = Field(default=False, description="Send the cookie over HTTPS only.")
    poll_seconds: float = Field(default=1.0, gt=0,
                                description="How often the live pages ask for updates.")


class WebhookSettings(BaseModel):
    """Webhook deliveries (docs/service.md): GREENTRAINER_WEBHOOKS__<FIELD>."""

    model_config = ConfigDict(extra="forbid")

    allow_private_targets: bool = Field(
        default=False, description="Accept endpoint URLs on private, loopback, link-local or "
        "other non-public addresses (a test receiver, an internal network); off, such a URL "
        "is refused at registration and at every delivery.")
    max_attempts: int = Field(default=8, ge=1, le=50, description="Tries of one delivery "
                              "before it is marked failed.")
    backoff_seconds: float = Field(default=5.0, gt=0, description="Wait before the first "
                                   "retry; each further retry waits twice as long as the last.")
    max_backoff_seconds: float = Field(default=3600.0, gt=0, description="The longest wait "
                                       "between two tries of a delivery.")
    timeout_seconds: float = Field(default=10.0, gt=0, description="How long one try waits "
                                   "for the receiver's answer.")
    interval_seconds: float = Field(default=1.0, gt=0, description="How often the scheduler "
                                    "process looks for deliveries due.")


class Settings(BaseSettings):
    """Every setting; a field maps to ``GREENTRAINER_<FIELD>``, a section's field to
    ``GREENTRAINER_<SECTION>__<FIELD>`` (see the module docstring)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter=NESTED,
                                      extra="ignore")

    data_dir: Path = Field(
        default=Path("var"), description="Uploaded data sets, artifacts, embedded DB."
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL; empty = the SQLite file <data_dir>/greentrainer.sqlite; "
        "production: postgresql+psycopg://user:pass@host/db.",
    )
    broker_url: str | None = Field(
        default=None, description="Celery broker (redis://...); unset = embedded mode, no broker "
        "(a SQLite transport next to the embedded database). /readyz pings it."
    )
    admin_key: SecretStr | None = Field(
        default=None,
        description="Key that manages teams, in addition to admin keys stored in the DB.",
    )
    max_upload_bytes: int = Field(
        default=1024 * MIB, gt=0, description="Largest accepted data set file (413 beyond); "
        "as large as max_decoded_bytes, which a text file decodes to. Uploads stream through "
        "disk, never memory: TMPDIR and <data_dir> need room for one."
    )
    max_dataset_rows: int = Field(default=1_000_000, gt=0, description="Most rows in one data set.")
    max_cell_bytes: int = Field(default=MIB, gt=0, description="Longest source or target text "
                                "of one row, in bytes (UTF-8).")
    max_decoded_bytes: int = Field(
        default=1024 * MIB, gt=0, description="Most bytes an upload may decode to (Parquet is "
        "compressed: checked from its metadata, then batch by batch as it is read).")
    upload_validation_memory_mb: int = Field(
        default=2048, ge=512, description="Address space of the child process that validates "
        "each upload (Python and pyarrow take about 300 MB of it; the API's "
        "own memory never holds the decoded file); over it: 413.")
    upload_validation_timeout_s: float = Field(
        default=120.0, gt=0, description="Longest an upload's validation may take (422 beyond).")
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
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Addresses (or CIDR ranges) of the reverse proxies in "
        "front of the API, whose X-Forwarded-For / X-Forwarded-Proto are believed (JSON list or "
        "comma-separated); unset = none: the client address is the TCP peer's, whatever a "
        "client sends (the failed sign-in limit counts per address).")
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Host names the API answers to (JSON list or "
        "comma-separated, `*.example.com` allowed); another Host header is answered 400. Unset "
        "= any host (redirects are relative, so no Host is ever reflected).")
    log_level: str = Field(default="INFO", description="Log level of every process (API, worker, "
                           "scheduler); `greentrainer worker --loglevel` overrides it for one worker.")
    log_format: LogFormat = Field(
        default="json", description="`json`: one JSON object per line on stderr, with the record's "
        "fields, for a log collector; `text`: `time LEVEL logger: message key=value ...` (the "
        "default under `greentrainer up`).")
    sse_poll_seconds: float = Field(
        default=1.0, gt=0, description="How often an event stream looks for new job events."
    )
    db_pool_size: int = Field(
        default=10, ge=1, description="Database connections per process, each opened when first "
        "needed and then kept; requests beyond them wait for one. All processes together must stay "
        "under Postgres's max_connections (docs/service.md)."
    )
    db_pool_timeout_seconds: float = Field(
        default=10.0, gt=0, description="How long a request waits for a free DB connection "
        "before it is answered 503."
    )
    signin_failure_burst: int = Field(
        default=20, ge=1, description="Wrong API keys one client address may present in a burst "
        "(API or dashboard sign-in) before it is answered 429; counted in the database, across all "
        "API processes (docs/reliability.md)."
    )
    signin_failure_refill_seconds: float = Field(
        default=3.0, gt=0, description="One more failed sign-in is allowed per address after "
        "this many seconds."
    )

    carbon: CarbonSettings = Field(default_factory=CarbonSettings,
                                   description="Carbon-intensity providers.")
    pool: PoolSettings = Field(default_factory=PoolSettings,
                               description="Leases, heartbeats, retries, dispatch pace.")
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings,
                                         description="The dashboard's sign-in and pages.")
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings,
                                      description="Webhook targets, retries and timeouts.")
    storage: StorageSettings = Field(default_factory=StorageSettings,
                                     description="Data sets, checkpoints, artifacts: local or S3.")

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _LegacyNames(settings_cls), dotenv_settings,
                file_secret_settings)

    @field_validator("trusted_proxies", "allowed_hosts", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            return json.loads(text) if text.startswith("[") else \
                [part.strip() for part in text.split(",") if part.strip()]
        return value

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


def _shown(value: Any) -> str:
    if value is None or value == "" or value == []:
        return "unset"
    if isinstance(value, SecretStr):
        return "unset"
    return f"`{value}`"


def settings_reference() -> list[tuple[str, str, str, str | None]]:
    """(variable, default, meaning, old flat name or None) of every setting, in declaration
    order: the rows of the table in docs/settings.md (a test holds the two equal)."""
    old_names = {where: old for old, where in LEGACY_NAMES.items()}
    rows: list[tuple[str, str, str, str | None]] = []
    for name, field in Settings.model_fields.items():
        section = field.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            defaults = section()
            for sub, sub_field in section.model_fields.items():
                rows.append((env_name(name, sub), _shown(getattr(defaults, sub)),
                             sub_field.description or "", old_names.get((name, sub))))
        else:
            default = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
            rows.append((env_name(name), _shown(default), field.description or "", None))
    return rows


def settings_table() -> str:
    """docs/settings.md's table, made from `settings_reference`."""
    lines = ["| Variable | Default | Meaning | Old name (still read) |", "|---|---|---|---|"]
    for variable, default, meaning, old in settings_reference():
        lines.append(f"| `{variable}` | {default} | {meaning} | {f'`{old}`' if old else ''} |")
    return "\n".join(lines)
