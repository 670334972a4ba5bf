"""Carbon-intensity providers behind one interface (`CarbonProvider`), a cache and a chain."""

from .base import CarbonProvider
from .chain import CachedProvider, ChainResult, ProviderChain
from .electricitymaps import ElectricityMapsProvider
from .gb import GBCarbonIntensityProvider
from .static import StaticCountryProvider, codecarbon_country_intensities
from .trace import TraceReplayProvider
from .watttime import WattTimeProvider

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
