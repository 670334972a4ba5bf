"""The carbon settings (one section of the service's `Settings`) and the provider chain they build."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from greentrainer_carbon.clock import Clock, parse_clock, utc_now
from greentrainer_carbon.providers import (
    CachedProvider,
    CarbonProvider,
    ElectricityMapsProvider,
    GBCarbonIntensityProvider,
    ProviderChain,
    StaticCountryProvider,
    TraceReplayProvider,
    WattTimeProvider,
)
from greentrainer_carbon.providers.electricitymaps import ELECTRICITY_MAPS_BASE_URL
from greentrainer_carbon.providers.gb import GB_API_BASE_URL
from greentrainer_carbon.providers.watttime import WATTTIME_BASE_URL
from greentrainer_carbon.retrying_http import RetryingHTTP
from greentrainer_carbon.trace_data import load_trace

KNOWN_PROVIDERS = ("gb", "electricitymaps", "watttime", "static", "trace")


class CarbonSettings(BaseModel):
    """The carbon section of the service's settings: read from GREENTRAINER_CARBON__<FIELD>
    (service.settings.Settings); built directly (e.g. ``CarbonSettings(providers="trace")``) by
    the simulator and tests."""

    model_config = ConfigDict(extra="forbid")

    providers: str = Field(
        default="static", description="Comma list of carbon-intensity providers, tried in order: "
        + ", ".join(KNOWN_PROVIDERS) + " (the static average is always appended last)."
    )
    cache_ttl_s: float = Field(
        default=300.0, ge=0, description="Seconds a provider's answer is reused (never past the "
        "end of the 30-minute slot it was read in)."
    )
    http_timeout_s: float = Field(
        default=10.0, gt=0, description="Per-request timeout of the provider clients."
    )
    http_max_retries: int = Field(default=3, ge=0,
                                  description="Retries on timeouts, 429 and 5xx answers.")
    http_backoff_s: float = Field(
        default=0.5, ge=0, description="First backoff; doubles each retry unless Retry-After."
    )
    gb_api_base_url: str = Field(default=GB_API_BASE_URL,
                                 description="Base URL of the GB Carbon Intensity API.")
    gb_region_id: int | None = Field(
        default=None, ge=1, le=17, description="GB region 1..17; unset = national."
    )
    electricitymaps_base_url: str = Field(default=ELECTRICITY_MAPS_BASE_URL,
                                          description="Base URL of the Electricity Maps API.")
    electricitymaps_token: SecretStr | None = Field(
        default=None, description="Electricity Maps API token (required by that provider).")
    electricitymaps_zone: str = Field(default="GB", description="Electricity Maps zone, "
                                      "unless a job names its region.")
    watttime_base_url: str = Field(default=WATTTIME_BASE_URL,
                                   description="Base URL of the WattTime API.")
    watttime_username: str | None = Field(default=None, description="WattTime user name.")
    watttime_password: SecretStr | None = Field(default=None, description="WattTime password.")
    watttime_region: str = Field(default="UK", description="WattTime balancing authority.")
    static_country_iso3: str = Field(
        default="GBR", description="Country (ISO 3166 alpha-3) of the static yearly average, "
        "unless a job names its region.")
    trace: str = Field(
        default="gb-2020", description="Shipped trace name or CSV path of the `trace` provider."
    )
    trace_anchor: datetime | None = Field(
        default=None, description="The moment the `trace` provider replays as the trace's start "
        "(then in a loop); unset: the clock's time is looked up in the trace directly.")
    clock: str = Field(
        default="real", description="Test only: the clock carbon decisions read, `real` or "
        "`accelerated:<start ISO>:<factor>` (greentrainer_carbon/clock.py).")
    pool_region: str = Field(default="GB", min_length=1, max_length=64,
                             description="Grid region of the GPU pool (shown with its intensity; "
                             "the providers' own region settings choose the data).")
    pool_forecast_hours: float = Field(default=24.0, gt=0, le=72,
                                       description="Hours of forecast shown for the pool.")
    history_days: float = Field(default=35.0, ge=8, le=3660,
                                description="Days of recorded intensity kept per region (the "
                                "forecasts read the last 4 weeks, the rho reference the last 7 days; "
                                "older slots are deleted).")
    energy_host_w: float = Field(default=150.0, ge=0, description="Energy model: a worker's "
                                 "host and idle power while a job holds its slot, W "
                                 "(docs/scheduler.md, \"Energy model\").")
    energy_compute_w: float = Field(default=550.0, ge=0, description="Energy model: the power "
                                    "drawn on top while training at full cost, W.")
    energy_overhead_s: float = Field(default=0.0, ge=0, description="Energy model: seconds of "
                                     "each epoch that do not shrink with rho.")
    energy_resume_s: float = Field(default=120.0, ge=0, description="Energy model: seconds of "
                                   "loading (model, data, checkpoint) when a paused job resumes; "
                                   "a pause happens only when the forecast repays it.")

    @field_validator("providers")
    @classmethod
    def _known(cls, value: str) -> str:
        names = [n.strip() for n in value.split(",") if n.strip()]
        unknown = [n for n in names if n not in KNOWN_PROVIDERS]
        if not names or unknown:
            raise ValueError(
                f"unknown carbon provider(s) {unknown or 'none given'}; "
                f"choose from {', '.join(KNOWN_PROVIDERS)}"
            )
        return ",".join(names)

    @field_validator("clock")
    @classmethod
    def _clock(cls, value: str) -> str:
        parse_clock(value)  # raises ValueError naming what is wrong
        return value

    @property
    def now(self) -> Clock:
        """The clock carbon decisions read (`greentrainer_carbon.clock`)."""
        return parse_clock(self.clock)

    @property
    def provider_names(self) -> list[str]:
        return self.providers.split(",")


def _http(settings: CarbonSettings, name: str, base_url: str) -> RetryingHTTP:
    return RetryingHTTP(
        name,
        base_url,
        timeout_s=settings.http_timeout_s,
        max_retries=settings.http_max_retries,
        backoff_s=settings.http_backoff_s,
    )


def build_provider(
    name: str,
    settings: CarbonSettings,
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
                "GREENTRAINER_CARBON__ELECTRICITYMAPS_TOKEN is required for the electricitymaps provider"
            )
        return ElectricityMapsProvider(
            settings.electricitymaps_token.get_secret_value(),
            settings.electricitymaps_zone,
            _http(settings, "electricitymaps", settings.electricitymaps_base_url),
        )
    if name == "watttime":
        if not settings.watttime_username or settings.watttime_password is None:
            raise ValueError(
                "GREENTRAINER_CARBON__WATTTIME_USERNAME and GREENTRAINER_CARBON__WATTTIME_PASSWORD "
                "are required for the watttime provider"
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
            load_trace(settings.trace), clock=clock, anchor=trace_anchor
        )
    raise ValueError(f"unknown provider {name!r}; choose from {', '.join(KNOWN_PROVIDERS)}")


def build_chain(
    settings: CarbonSettings,
    clock: Clock | None = None,
    trace_anchor: datetime | None = None,
) -> ProviderChain:
    """The configured providers, each behind a TTL cache, with the static average always last;
    on the settings' clock and trace anchor unless given. Raises ValueError naming a setting
    that a configured provider lacks."""
    clock = clock or settings.now
    trace_anchor = trace_anchor or settings.trace_anchor
    names = settings.provider_names
    if "static" not in names:
        names = [*names, "static"]  # the offline default never needs the network
    providers = [
        CachedProvider(
            build_provider(n, settings, clock, trace_anchor), settings.cache_ttl_s, clock
        )
        for n in names
    ]
    return ProviderChain(providers, clock)


def for_region(settings: CarbonSettings, region: str | None) -> CarbonSettings:
    """``settings`` pointed at a job's region where a provider takes one per request: the
    Electricity Maps zone and the static country average (ISO 3166 alpha-2 such as ``FR`` ->
    ``FRA``). The GB and WattTime providers keep their deployment-wide region settings."""
    if not region:
        return settings
    import pycountry  # installed with CodeCarbon

    updates: dict[str, str] = {"electricitymaps_zone": region}
    country = pycountry.countries.get(alpha_2=region.upper()[:2]) if len(region) >= 2 else None
    if country is not None:
        updates["static_country_iso3"] = country.alpha_3
    return settings.model_copy(update=updates)


def unknown_region(region: str) -> str | None:
    """Why ``region`` is not one this package knows (None when it is): its first two letters
    must be an ISO 3166 alpha-2 country with CodeCarbon's yearly average, the data every chain
    falls back to. An unknown region once silently used the deployment's own country's data."""
    import pycountry  # installed with CodeCarbon

    from greentrainer_carbon.providers.static import codecarbon_country_intensities

    country = pycountry.countries.get(alpha_2=region.upper()[:2]) if len(region) >= 2 else None
    if country is None:
        return (f"region {region!r} does not start with an ISO 3166 country code "
                "(e.g. GB, FR, DE, or an Electricity Maps zone such as US-CAL-CISO)")
    if country.alpha_3 not in codecarbon_country_intensities():
        return f"region {region!r}: no carbon-intensity data is known for {country.name}"
    return None


def region_chain(settings: CarbonSettings, region: str | None) -> ProviderChain:
    """The deployment's provider chain pointed at a job's region (`for_region`)."""
    return build_chain(for_region(settings, region))
