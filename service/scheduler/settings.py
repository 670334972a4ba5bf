"""Scheduler settings from the environment (prefix GREENTRAINER_) and the chain they build."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .providers import (
    CachedProvider,
    CarbonProvider,
    ElectricityMapsProvider,
    GBCarbonIntensityProvider,
    ProviderChain,
    StaticCountryProvider,
    TraceReplayProvider,
    WattTimeProvider,
)
from .providers.base import Clock, utc_now
from .providers.electricitymaps import ELECTRICITY_MAPS_BASE_URL
from .providers.gb import GB_API_BASE_URL
from .providers.watttime import WATTTIME_BASE_URL
from .retrying_http import RetryingHTTP
from .trace_data import load_trace

KNOWN_PROVIDERS = ("gb", "electricitymaps", "watttime", "static", "trace")


class SchedulerSettings(BaseSettings):
    """Each field reads GREENTRAINER_<FIELD IN UPPER CASE>, e.g. GREENTRAINER_CARBON_PROVIDERS."""

    model_config = SettingsConfigDict(env_prefix="GREENTRAINER_", extra="ignore")

    carbon_providers: str = Field(
        default="static", description="comma list, tried in order: " + ",".join(KNOWN_PROVIDERS)
    )
    carbon_cache_ttl_s: float = Field(
        default=300.0, ge=0, description="seconds a provider answer is reused"
    )
    http_timeout_s: float = Field(
        default=10.0, gt=0, description="per-request timeout of the provider clients"
    )
    http_max_retries: int = Field(default=3, ge=0, description="retries on timeouts, 429 and 5xx")
    http_backoff_s: float = Field(
        default=0.5, ge=0, description="first backoff; doubles each retry unless Retry-After"
    )
    gb_api_base_url: str = GB_API_BASE_URL
    gb_region_id: int | None = Field(
        default=None, ge=1, le=17, description="GB region 1..17; unset = national"
    )
    electricitymaps_base_url: str = ELECTRICITY_MAPS_BASE_URL
    electricitymaps_token: SecretStr | None = None
    electricitymaps_zone: str = "GB"
    watttime_base_url: str = WATTTIME_BASE_URL
    watttime_username: str | None = None
    watttime_password: SecretStr | None = None
    watttime_region: str = "UK"
    static_country_iso3: str = "GBR"
    carbon_trace: str = Field(
        default="gb-2020", description="shipped trace name or CSV path for 'trace'"
    )

    @field_validator("carbon_providers")
    @classmethod
    def _known(cls, value: str) -> str:
        names = [n.strip() for n in value.split(",") if n.strip()]
        unknown = [n for n in names if n not in KNOWN_PROVIDERS]
        if not names or unknown:
            raise ValueError(
                f"GREENTRAINER_CARBON_PROVIDERS has unknown {unknown or 'empty'}; "
                f"choose from {', '.join(KNOWN_PROVIDERS)}"
            )
        return ",".join(names)

    @property
    def provider_names(self) -> list[str]:
        return self.carbon_providers.split(",")


def _http(settings: SchedulerSettings, name: str, base_url: str) -> RetryingHTTP:
    return RetryingHTTP(
        name,
        base_url,
        timeout_s=settings.http_timeout_s,
        max_retries=settings.http_max_retries,
        backoff_s=settings.http_backoff_s,
    )


def build_provider(
    name: str,
    settings: SchedulerSettings,
    clock: Clock = utc_now,
    trace_anchor: datetime | None = None,
) -> CarbonProvider:
    """One configured provider. Raises ValueError naming the missing setting."""
    if name == "gb":
        return GBCarbonIntensityProvider(
            _http(settings, "gb-carbon-intensity", settings.gb_api_base_url),
            region_id=settings.gb_region_id,
            clock=clock,
        )
    if name == "electricitymaps":
        if settings.electricitymaps_token is None:
            raise ValueError(
                "GREENTRAINER_ELECTRICITYMAPS_TOKEN is required for the electricitymaps provider"
            )
        return ElectricityMapsProvider(
            settings.electricitymaps_token.get_secret_value(),
            settings.electricitymaps_zone,
            _http(settings, "electricitymaps", settings.electricitymaps_base_url),
        )
    if name == "watttime":
        if not settings.watttime_username or settings.watttime_password is None:
            raise ValueError(
                "GREENTRAINER_WATTTIME_USERNAME and GREENTRAINER_WATTTIME_PASSWORD are required"
            )
        return WattTimeProvider(
            settings.watttime_username,
            settings.watttime_password.get_secret_value(),
            settings.watttime_region,
            _http(settings, "watttime", settings.watttime_base_url),
            clock=clock,
        )
    if name == "static":
        return StaticCountryProvider(settings.static_country_iso3, clock=clock)
    if name == "trace":
        return TraceReplayProvider(
            load_trace(settings.carbon_trace), clock=clock, anchor=trace_anchor
        )
    raise ValueError(f"unknown provider {name!r}; choose from {', '.join(KNOWN_PROVIDERS)}")


def build_chain(
    settings: SchedulerSettings | None = None,
    clock: Clock = utc_now,
    trace_anchor: datetime | None = None,
) -> ProviderChain:
    """The configured providers, each behind a TTL cache, with the static average always last."""
    settings = settings or SchedulerSettings()
    names = settings.provider_names
    if "static" not in names:
        names = [*names, "static"]  # the offline default never needs the network
    providers = [
        CachedProvider(
            build_provider(n, settings, clock, trace_anchor), settings.carbon_cache_ttl_s, clock
        )
        for n in names
    ]
    return ProviderChain(providers, clock)
