"""Exceptions raised by the carbon package.

SchedulerError
├── ProviderError                 a carbon-intensity provider could not answer
│   ├── ProviderHTTPError         non-retryable HTTP status (4xx) or retries exhausted
│   ├── ProviderResponseError     the body was not in the provider's documented shape
│   ├── ProviderDataMissing       the provider answered, but the value is null / absent
│   └── AllProvidersFailed        every provider of a fallback chain failed
├── TraceError                    a recorded trace is unreadable or does not cover a time
├── PolicyError                   invalid rho policy settings (names the field)
│   ├── BudgetInfeasibleError     at submission: a CO2 budget cannot be met even at rho_min
│   └── BudgetExhaustedError      during a run: the remaining epochs no longer fit the budget
└── WindowError                   no start time meets the deadline

(The pool's `DispatchError`, for invalid dispatcher input, derives from SchedulerError too.)
"""

from __future__ import annotations


class SchedulerError(Exception):
    """Base class of every error the scheduler raises on purpose."""


class ProviderError(SchedulerError):
    """A provider could not produce a reading. `provider` names it (never a secret)."""

    def __init__(self, provider: str, message: str) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.reason = message


class ProviderHTTPError(ProviderError):
    def __init__(self, provider: str, message: str, status_code: int | None = None) -> None:
        super().__init__(provider, message)
        self.status_code = status_code


class ProviderResponseError(ProviderError):
    pass


class ProviderDataMissing(ProviderError):
    pass


class AllProvidersFailed(ProviderError):
    def __init__(self, failures: list[ProviderError]) -> None:
        detail = "; ".join(str(f) for f in failures) or "no providers configured"
        super().__init__("provider-chain", f"every provider failed: {detail}")
        self.failures = failures


class TraceError(SchedulerError):
    pass


class PolicyError(SchedulerError):
    pass


class BudgetInfeasibleError(PolicyError):
    """Raised at submission time when even rho_min would exceed the CO2 budget."""

    def __init__(self, budget_kg_co2: float, minimum_kg_co2: float,
                 rho: float | None = None) -> None:
        at = f"rho {rho:g} (rho_min)" if rho is not None else "rho_min"
        super().__init__(
            f"co2_budget_kg={budget_kg_co2:.4g} cannot be met: even the cheapest schedule, every "
            f"epoch at {at}, needs an estimated {minimum_kg_co2:.4g} kg CO2 (raise the budget, "
            "lower rho_min, allow a later deadline or use fewer epochs)"
        )
        self.budget_kg_co2 = budget_kg_co2
        self.minimum_kg_co2 = minimum_kg_co2
        self.rho = rho


class BudgetExhaustedError(PolicyError):
    """Raised at an epoch boundary when the remaining epochs no longer fit the remaining budget."""

    def __init__(self, remaining_kg_co2: float, minimum_kg_co2: float, epochs_left: int) -> None:
        super().__init__(
            f"CO2 budget exhausted: {remaining_kg_co2:.4g} kg left, but the {epochs_left} "
            f"remaining epoch(s) need an estimated {minimum_kg_co2:.4g} kg even at rho_min; "
            "stop the job here"
        )
        self.remaining_kg_co2 = remaining_kg_co2
        self.minimum_kg_co2 = minimum_kg_co2


class WindowError(SchedulerError):
    pass
