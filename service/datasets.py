"""Data sets: upload (validate, store content-addressed, record), list, read, delete. The same
bytes uploaded twice by a team (with the same field names) give back the first data set instead
of a copy (and bring back a deleted one). The native /datasets routes and /v1/files call these.

An upload streams through disk, never memory: Starlette's multipart parser spools the request's
file part (to TMPDIR past 1 MiB), `spool_upload` copies it in chunks to <data_dir>/uploads while
hashing it and enforcing the size limit, the bounded child validates that file a line at a time,
and the store takes it by a rename (local) or a multipart upload (S3)."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.auth import Principal, owned
from service.dataset_check import validate_upload
from service.dataset_files import CHAT_FIELD, FORMATS, PROMPT_COMPLETION, Limits, detect_format, sniff_jsonl
from service.errors import Conflict, NotFound, PayloadTooLarge
from service.models import Dataset, Job, new_id, utcnow
from service.settings import Settings
from service.states import TERMINAL
from service.storage import CHUNK_BYTES, BlobStore, refusing_os_errors, store_file_or_refuse

log = logging.getLogger("service.datasets")
SPOOL_DIR = "uploads"  # under data_dir: the local store's blobs are a rename away
# A spool this old was left by a process that died mid-upload (no upload takes a day).
STALE_SPOOL_S = 24 * 3600


@dataclass(frozen=True)
class Upload:
    """An uploaded file spooled to disk: where it is, its size and its SHA-256."""

    path: Path
    size_bytes: int
    sha256: str
    spool_s: float = 0.0  # seconds spent copying it to disk (logged with the other steps)


@contextmanager
def spool_upload(stream: BinaryIO, settings: Settings) -> Iterator[Upload]:
    """Copy ``stream`` in chunks to a temp file under <data_dir>/uploads, hashing it on the way:
    the upload is never in memory whole. Raises `PayloadTooLarge` (field ``file``) as soon as it
    passes GREENTRAINER_MAX_UPLOAD_BYTES, `StorageFull` when the disk fills; the temp file is
    removed on leaving the block (unless the store took it)."""
    limit_bytes = settings.max_upload_bytes
    directory = Path(settings.data_dir) / SPOOL_DIR
    with refusing_os_errors(SPOOL_DIR):
        directory.mkdir(parents=True, exist_ok=True)
        _remove_stale_spools(directory)
        fd, name = tempfile.mkstemp(dir=directory, prefix=".upload-")
    path, started = Path(name), time.perf_counter()
    try:
        digest, size = hashlib.sha256(), 0
        with refusing_os_errors(SPOOL_DIR), os.fdopen(fd, "wb") as spool:
            while chunk := stream.read(CHUNK_BYTES):
                size += len(chunk)
                if size > limit_bytes:
                    raise PayloadTooLarge(f"file is larger than the upload limit of {limit_bytes} "
                                          "bytes (GREENTRAINER_MAX_UPLOAD_BYTES)", field="file")
                digest.update(chunk)
                spool.write(chunk)
        yield Upload(path, size, digest.hexdigest(), time.perf_counter() - started)
    finally:
        path.unlink(missing_ok=True)


def _remove_stale_spools(directory: Path) -> None:
    """Spools of API processes that were killed mid-upload (their ``finally`` never ran); age
    tells them from the uploads of other processes sharing the data dir."""
    cutoff = time.time() - STALE_SPOOL_S
    for spool in directory.glob(".upload-*"):
        try:
            if spool.stat().st_mtime < cutoff:
                spool.unlink()
        except FileNotFoundError:  # another process removed it first
            continue


def create_dataset(session: Session, store: BlobStore, *, team_id: str, upload: Upload,
                   filename: str | None, declared_format: str | None, name: str | None,
                   source_field: str | None, target_field: str | None,
                   settings: Settings) -> tuple[Dataset, bool]:
    """Validate (in a bounded child process, `validate_upload`) and store a spooled upload (it
    moves into the store: a multipart upload to S3, a rename on local disk); returns
    (dataset, created). Fields not given are the settings' defaults, or ``prompt``/``completion``
    for a JSONL file whose first row has those; a JSONL file whose first row has ``messages`` is
    chat data. Raises `InvalidDataset` listing the offending lines, or naming the ``format``
    field when the format is unknown; `PayloadTooLarge` past a limit; `StorageFull` or
    `StorageUnavailable` when the store cannot take it (nothing is left behind)."""
    default_fields = (settings.dataset_source_field, settings.dataset_target_field)
    fmt = detect_format(filename, declared_format)
    first = None
    if fmt == "jsonl":
        with open(upload.path, "rb") as head:
            first = sniff_jsonl(head)
    kind = "chat" if first is not None and CHAT_FIELD in first else "pairs"
    if kind == "chat":
        source_field = target_field = CHAT_FIELD
    elif source_field is None and target_field is None and first is not None and \
            default_fields[0] not in first and all(f in first for f in PROMPT_COMPLETION):
        source_field, target_field = PROMPT_COMPLETION
    source_field, target_field = source_field or default_fields[0], \
        target_field or default_fields[1]
    digest = upload.sha256
    existing = _same_content(session, team_id, digest, source_field, target_field)
    if existing is not None and existing.deleted_at is None:
        return existing, False
    limits = Limits(settings.max_dataset_rows, settings.max_cell_bytes,
                    settings.max_decoded_bytes)
    started = time.perf_counter()
    rows = validate_upload(upload.path, fmt, (source_field, target_field), limits, kind=kind,
                           memory_mb=settings.upload_validation_memory_mb,
                           timeout_s=settings.upload_validation_timeout_s)
    validated = time.perf_counter()
    key = store_file_or_refuse(store, "datasets", upload.path, sha256=digest,
                               suffix=FORMATS[fmt])
    log.info("data set upload of %d bytes (%d rows): spooled in %.1f s, validated in %.1f s, "
             "stored in %.1f s", upload.size_bytes, rows, upload.spool_s, validated - started,
             time.perf_counter() - validated)
    if existing is not None:  # deleted earlier: the same row (its id) comes back
        existing.deleted_at, existing.storage_key, existing.row_count = None, key, rows
        existing.name, existing.format = name or filename or digest[:12], fmt
        return existing, True
    dataset = Dataset(id=new_id("ds"), team_id=team_id, name=name or filename or digest[:12],
                      format=fmt, kind=kind, sha256=digest, size_bytes=upload.size_bytes,
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
    query = select(Dataset).where(Dataset.deleted_at.is_(None)).order_by(Dataset.id.desc()) \
        .limit(limit + 1)
    if team_id is not None:
        query = query.where(Dataset.team_id == team_id)
    if after is not None:
        query = query.where(Dataset.id < after)
    rows = list(session.scalars(query))
    return rows[:limit], len(rows) > limit


def get_dataset(session: Session, dataset_id: str, principal: Principal) -> Dataset:
    """The data set if the caller may see it; `NotFound` for a missing, deleted or another
    team's one (the same message for each)."""
    dataset = owned(session, Dataset, dataset_id, principal)
    if dataset.deleted_at is not None:
        raise NotFound(f"no dataset with id {dataset_id!r}", field="id")
    return dataset


def delete_dataset(session: Session, store: BlobStore, dataset: Dataset) -> None:
    """Delete ``dataset`` and commit; then remove its bytes unless another live data set (of any
    team: storage is content-addressed) holds the same ones. Finished jobs keep naming it.
    Raises `Conflict` (409) naming a job that still needs it (not finished: queued, waiting,
    running or paused)."""
    locked = session.scalar(select(Dataset).where(Dataset.id == dataset.id).with_for_update())
    if locked is None or locked.deleted_at is not None:
        raise NotFound(f"no dataset with id {dataset.id!r}", field="id")
    user = session.execute(select(Job.id, Job.status).where(
        Job.status.not_in([s.value for s in TERMINAL]),
        or_(Job.training_dataset_id == dataset.id, Job.validation_dataset_id == dataset.id,
            Job.test_dataset_id == dataset.id)).order_by(Job.id).limit(1)).first()
    if user is not None:
        raise Conflict(f"data set {dataset.id} is used by job {user.id} ({user.status}); cancel "
                       "the job or wait until it has finished", field="id")
    locked.deleted_at = utcnow()
    key = locked.storage_key
    session.commit()
    still_used = session.scalar(select(Dataset.id).where(Dataset.storage_key == key,
                                                         Dataset.deleted_at.is_(None)).limit(1))
    session.commit()
    if still_used is None:
        store.delete(key)
