"""Carbon-intensity providers behind one interface (`CarbonProvider`), a cache and a chain."""

from greentrainer_carbon.providers.base import CarbonProvider
from greentrainer_carbon.providers.chain import CachedProvider, ChainResult, ProviderChain
from greentrainer_carbon.providers.electricitymaps import ElectricityMapsProvider
from greentrainer_carbon.providers.gb import GBCarbonIntensityProvider
from greentrainer_carbon.providers.static import StaticCountryProvider, codecarbon_country_intensities
from greentrainer_carbon.providers.trace import TraceReplayProvider
from greentrainer_carbon.providers.watttime import WattTimeProvider

__all__ = [
    "CachedProvider",
    "CarbonProvider",
    "ChainResult",
    "ElectricityMapsProvider",
    "GBCarbonIntensityProvider",
    "ProviderChain",
    "StaticCountryProvider",
    "TraceReplayProvider",
    "WattTimeProvider",
    "codecarbon_country_intensities",
]
