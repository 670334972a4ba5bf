"""The GreenTrainer API's Python client: `Client` (blocking) and `AsyncClient`, typed records
of what the API returns, and the `GreenTrainerError` tree. See docs/client.md.

Importing it imports httpx only: none of the service, the workers or torch.
"""

from greentrainer.client._async import AsyncClient
from greentrainer.client._base import API_KEY_ENV, BASE_URL_ENV
from greentrainer.client._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    GreenTrainerError,
    InternalServerError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
    WaitTimeout,
)
from greentrainer.client._sync import Client
from greentrainer.client._types import (
    TERMINAL_STATUSES,
    Artifact,
    Dataset,
    Epoch,
    Event,
    Job,
    JobError,
    Page,
)

__version__ = "0.1.0"

__all__ = [
    "API_KEY_ENV", "BASE_URL_ENV", "TERMINAL_STATUSES", "APIConnectionError", "APIStatusError",
    "APITimeoutError", "Artifact", "AsyncClient", "AuthenticationError", "BadRequestError",
    "Client", "ConflictError", "Dataset", "Epoch", "Event", "GreenTrainerError",
    "InternalServerError", "Job", "JobError", "NotFoundError", "Page", "PayloadTooLargeError",
    "PermissionDeniedError", "RateLimitError", "UnprocessableEntityError", "WaitTimeout",
]
