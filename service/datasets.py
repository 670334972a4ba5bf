"""Data set uploads: validate, store content-addressed, record. The same bytes uploaded twice by
a team (with the same field names) give back the first data set instead of a copy."""

from __future__ import annotations

import hashlib
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.dataset_check import validate_upload
from service.dataset_files import FORMATS, Limits, detect_format
from service.errors import PayloadTooLarge
from service.models import Dataset, new_id, utcnow
from service.settings import Settings
from service.storage import BlobStore, put_or_refuse

_CHUNK = 1 << 20


def read_limited(stream: BinaryIO, limit_bytes: int) -> bytes:
    """All bytes of ``stream``; raises `PayloadTooLarge` (field ``file``) past ``limit_bytes``."""
    parts: list[bytes] = []
    total = 0
    while chunk := stream.read(_CHUNK):
        total += len(chunk)
        if total > limit_bytes:
            raise PayloadTooLarge(f"file is larger than the upload limit of {limit_bytes} bytes "
                                  "(GREENTRAINER_MAX_UPLOAD_BYTES)", field="file")
        parts.append(chunk)
    return b"".join(parts)


def create_dataset(session: Session, store: BlobStore, *, team_id: str, data: bytes,
                   filename: str | None, declared_format: str | None, name: str | None,
                   source_field: str, target_field: str,
                   settings: Settings) -> tuple[Dataset, bool]:
    """Validate (in a bounded child process, `validate_upload`) and store an upload; returns
    (dataset, created). Raises `InvalidDataset` naming the offending line, or the ``format``
    field when the format is unknown; `PayloadTooLarge` past a limit; `StorageFull` or
    `StorageUnavailable` when the store cannot take it (nothing is left behind)."""
    fmt = detect_format(filename, declared_format)
    digest = hashlib.sha256(data).hexdigest()
    existing = _same_content(session, team_id, digest, source_field, target_field)
    if existing is not None:
        return existing, False
    limits = Limits(settings.max_dataset_rows, settings.max_cell_bytes,
                    settings.max_decoded_bytes)
    rows = validate_upload(data, fmt, (source_field, target_field), limits,
                           memory_mb=settings.upload_validation_memory_mb,
                           timeout_s=settings.upload_validation_timeout_s)
    key = put_or_refuse(store, "datasets", data, suffix=FORMATS[fmt])
    dataset = Dataset(id=new_id("ds"), team_id=team_id, name=name or filename or digest[:12],
                      format=fmt, sha256=digest, size_bytes=len(data), row_count=rows,
                      source_field=source_field, target_field=target_field, storage_key=key,
                      created_at=utcnow())
    try:
        with session.begin_nested():
            session.add(dataset)
    except IntegrityError:
        existing = _same_content(session, team_id, digest, source_field, target_field)
        if existing is None:
            raise
        return existing, False
    return dataset, True


def _same_content(session: Session, team_id: str, digest: str, source_field: str,
                  target_field: str) -> Dataset | None:
    return session.scalar(select(Dataset).where(
        Dataset.team_id == team_id, Dataset.sha256 == digest,
        Dataset.source_field == source_field, Dataset.target_field == target_field))


def list_datasets(session: Session, team_id: str | None, *, after: str | None,
                  limit: int) -> tuple[list[Dataset], bool]:
    """Newest first, cursor-paginated like the jobs list."""
    query = select(Dataset).order_by(Dataset.id.desc()).limit(limit + 1)
    if team_id is not None:
        query = query.where(Dataset.team_id == team_id)
    if after is not None:
        query = query.where(Dataset.id < after)
    rows = list(session.scalars(query))
    return rows[:limit], len(rows) > limit
