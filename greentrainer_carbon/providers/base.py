"""The provider interface: one reading now, and a forecast as a list of readings."""

from __future__ import annotations

from abc import ABC, abstractmethod

from greentrainer_carbon.clock import Clock, utc_now
from greentrainer_carbon.errors import ProviderResponseError
from greentrainer_carbon.readings import CarbonReading

__all__ = ["CarbonProvider", "Clock", "utc_now"]  # Clock and utc_now: greentrainer_carbon.clock


class CarbonProvider(ABC):
    """A source of grid carbon intensity for one region (bound at construction)."""

    name: str = "provider"

    @abstractmethod
    def latest(self) -> CarbonReading:
        """The current reading. Raises a ProviderError subclass when it cannot answer."""

    @abstractmethod
    def forecast(self, hours: float = 24.0) -> list[CarbonReading]:
        """Readings from now to `hours` ahead, oldest first; slots with no value are left out."""

    def close(self) -> None:  # noqa: B027 - optional hook, offline providers hold nothing
        """Release network resources (no-op for offline providers)."""


def field(obj: object, key: str, provider: str, where: str) -> object:
    """obj[key] with an error naming the missing field instead of a KeyError."""
    if not isinstance(obj, dict) or key not in obj:
        raise ProviderResponseError(provider, f"{where}: missing field {key!r}")
    return obj[key]


def number_or_none(value: object, provider: str, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProviderResponseError(provider, f"{where}: expected a number, got {value!r}")
    return float(value)
