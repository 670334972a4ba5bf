"""Domain errors of the service. Routers raise these; `service.http_errors` maps them to HTTP.

    ServiceError
    ├── InvalidInput (422)            a field of the request is wrong; names the field
    │   ├── UnknownModel              `model` is no alias, cached HF id or allowed local path
    │   ├── UnknownDataset            a dataset id that does not exist for this team
    │   └── InvalidDataset            an uploaded file fails validation; names the line or row
    ├── PayloadTooLarge (413)         an upload over the size limit
    ├── NotAuthenticated (401)        no or unknown API key
    ├── Forbidden (403)               a valid key that may not do this (team key on admin route)
    ├── NotFound (404)                no such object, or another team's object
    ├── TooManyFailedSignIns (429)    too many wrong keys from one address; has retry_after_s
    ├── Conflict (409)
    │   ├── IllegalTransition         job state change the state machine forbids
    │   └── IdempotencyConflict       Idempotency-Key reused with a different request
    ├── SchemaNotMigrated (503)       the database is not at the latest migration
    ├── StorageUnavailable (503)      the store cannot be written or did not answer (not writable,
    │   │                             down, 5xx, stalled) after its retries
    │   └── ChecksumMismatch          an object's bytes do not match the SHA-256 stored with it
    └── StorageFull (507)             the data disk is full; has retry_after_s
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base of every error the service reports to a client."""

    status_code = 500
    code = "internal_error"
    retry_after_s: int | None = None  # sent as Retry-After when set
    details: list[dict[str, object]] | None = None  # sent as error.details when set

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(ServiceError):
    status_code = 422
    code = "invalid_request"


class UnknownModel(InvalidInput):
    code = "unknown_model"


class UnknownDataset(InvalidInput):
    code = "unknown_dataset"


class InvalidDataset(InvalidInput):
    code = "invalid_dataset"

    def __init__(self, message: str, *, line: int | None = None, row: int | None = None,
                 field: str = "file", details: list[dict[str, object]] | None = None) -> None:
        where = f"line {line}: " if line is not None else f"row {row}: " if row is not None else ""
        super().__init__(where + message, field=field)
        self.line = line
        self.row = row
        self.details = details  # every bad line: {"line" (or "row"), "message"}


class PayloadTooLarge(ServiceError):
    status_code = 413
    code = "payload_too_large"


class NotAuthenticated(ServiceError):
    status_code = 401
    code = "not_authenticated"


class Forbidden(ServiceError):
    status_code = 403
    code = "forbidden"


class NotFound(ServiceError):
    status_code = 404
    code = "not_found"


class TooManyFailedSignIns(ServiceError):
    status_code = 429
    code = "too_many_failed_sign_ins"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message, field="Authorization")
        self.retry_after_s = retry_after_s


class Conflict(ServiceError):
    status_code = 409
    code = "conflict"


class IllegalTransition(Conflict):
    code = "illegal_transition"


class IdempotencyConflict(Conflict):
    code = "idempotency_key_reused"


class SchemaNotMigrated(ServiceError):
    status_code = 503
    code = "schema_not_migrated"


class StorageUnavailable(ServiceError):
    """The store refused a write for a reason other than space (not writable, an I/O error), or
    did not answer (down, 5xx, a stalled read) after its retries; nothing was recorded as stored,
    so the step may be tried again. Workers retry the job's try."""

    status_code = 503
    code = "storage_unavailable"
    retry_after_s = 5


class ChecksumMismatch(StorageUnavailable):
    """Bytes read back from the store differ from the SHA-256 written with them."""

    code = "storage_checksum_mismatch"


class StorageFull(ServiceError):
    """The disk that holds data sets and artifacts is full; the request may succeed later."""

    status_code = 507
    code = "storage_full"
    retry_after_s = 60
