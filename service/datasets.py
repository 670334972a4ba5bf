"""Data set uploads: validate, store content-addressed, record. The same bytes uploaded twice by
a team (with the same field names) give back the first data set instead of a copy."""

from __future__ import annotations

import hashlib
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.dataset_files import (
    CHAT_FIELD,
    FORMATS,
    PROMPT_COMPLETION,
    count_valid_rows,
    detect_format,
    sniff_jsonl,
)
from service.errors import PayloadTooLarge
from service.models import Dataset, new_id, utcnow
from service.storage import BlobStore

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
                   source_field: str | None, target_field: str | None,
                   default_fields: tuple[str, str], max_rows: int) -> tuple[Dataset, bool]:
    """Validate and store an upload; returns (dataset, created). Fields not given are the
    defaults, or ``prompt``/``completion`` for a JSONL file whose first row has those; a JSONL
    file whose first row has ``messages`` is chat data. Raises `InvalidDataset` listing the
    offending lines, or naming the ``format`` field when the format is unknown."""
    fmt = detect_format(filename, declared_format)
    first = sniff_jsonl(data) if fmt == "jsonl" else None
    kind = "chat" if first is not None and CHAT_FIELD in first else "pairs"
    if kind == "chat":
        source_field = target_field = CHAT_FIELD
    elif source_field is None and target_field is None and first is not None and \
            default_fields[0] not in first and all(f in first for f in PROMPT_COMPLETION):
        source_field, target_field = PROMPT_COMPLETION
    source_field, target_field = source_field or default_fields[0], \
        target_field or default_fields[1]
    digest = hashlib.sha256(data).hexdigest()
    existing = _same_content(session, team_id, digest, source_field, target_field)
    if existing is not None:
        return existing, False
    rows = count_valid_rows(data, fmt, source_field=source_field, target_field=target_field,
                            max_rows=max_rows, kind=kind)
    key, _ = store.put("datasets", data, suffix=FORMATS[fmt])
    dataset = Dataset(id=new_id("ds"), team_id=team_id, name=name or filename or digest[:12],
                      format=fmt, kind=kind, sha256=digest, size_bytes=len(data),
                      row_count=rows, source_field=source_field, target_field=target_field,
                      storage_key=key, created_at=utcnow())
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
