"""Where data sets, checkpoints and job artifacts live: one small interface, two backends.

`LocalBlobStore` (files under <data_dir>/blobs, the embedded default: one machine) and
`service.object_store.S3BlobStore` (an S3-protocol bucket that every worker machine reaches);
`make_store` picks one from the storage settings. Data sets and artifacts are content-addressed
(``<namespace>/<sha256>[suffix]``) so that the same bytes are stored once; checkpoints have
named keys (``checkpoints/<job id>/epoch-<n>.pt``, `put_at`). Every read and write streams in
chunks of `CHUNK_BYTES`: no file is read into memory whole.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

from service.errors import StorageFull, StorageUnavailable

if TYPE_CHECKING:
    from service.settings import Settings

CHUNK_BYTES = 1 << 20
log = logging.getLogger("service.storage")


def safe_key(key: str) -> str:
    """``key`` if it stays inside the store (no absolute path, no ``..``); else ValueError."""
    parts = key.split("/")
    if not key or key.startswith("/") or ".." in parts or "" in parts[:-1]:
        raise ValueError(f"storage key {key!r} escapes the storage root")
    return key


def file_sha256(path: Path) -> tuple[str, int]:
    """(SHA-256 hex, size in bytes) of the file at ``path``, read in chunks."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as source:
        while chunk := source.read(CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class BlobStore(Protocol):
    def put(self, namespace: str, data: bytes, *, suffix: str = "") -> tuple[str, str]:
        """Store ``data``; return (key, sha256 hex)."""
        ...

    def put_file(self, namespace: str, path: Path, *, suffix: str = "") -> tuple[str, str, int]:
        """Store a file's bytes; return (key, sha256 hex, size in bytes)."""
        ...

    def put_at(self, key: str, path: Path, *, sha256: str | None = None) -> int:
        """Move the file at ``path`` into the store under the named ``key`` (replacing it; the
        file is gone afterwards); returns its size in bytes. ``sha256``: the file's hash when
        the caller has it (saves reading a large file once more)."""
        ...

    def exists(self, key: str) -> bool: ...

    def open(self, key: str) -> BinaryIO: ...

    def iter_bytes(self, key: str) -> Iterator[bytes]:
        """The object's bytes in chunks (for streaming it to a client)."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object; a missing one is no error."""
        ...

    def local_path(self, key: str) -> Path:
        """A filesystem path to the object (the worker reads data sets and checkpoints from
        it); a remote store downloads it into this machine's cache first."""
        ...

    def download_url(self, key: str, filename: str) -> str | None:
        """A URL a client may download the object from directly, or None (local files)."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with ``prefix``; returns how many."""
        ...


def make_store(settings: Settings) -> BlobStore:
    """The blob store the storage settings name (every process builds it here)."""
    storage = settings.storage
    if storage.backend == "s3":
        from service.object_store import S3BlobStore

        return S3BlobStore(storage, storage.cache_dir or Path(settings.data_dir) / "cache")
    return LocalBlobStore(Path(settings.data_dir) / "blobs")


class LocalBlobStore:
    """Blobs as files under ``root``; writes are atomic (temp file + rename)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / safe_key(key)).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"storage key {key!r} escapes the storage root")
        return path

    @contextmanager
    def _temp_file(self) -> Iterator[tuple[BinaryIO, Path]]:
        """A temp file in ``root`` for an atomic write; removed if the write fails (a full
        disk must not leave half-written files behind)."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as handle:
                yield handle, Path(tmp)
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC and exc.filename is None:
                # Name the store, so that the error says which disk is full.
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.root)) from exc
            raise

    def _commit(self, tmp: Path, key: str) -> None:
        """Move the written temp file to its key; on any failure (a namespace directory that
        is not writable) the temp file is removed, never left behind."""
        try:
            final = self._path(key)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def put(self, namespace: str, data: bytes, *, suffix: str = "") -> tuple[str, str]:
        digest = hashlib.sha256(data).hexdigest()
        key = f"{namespace}/{digest}{suffix}"
        if not self._path(key).exists():
            with self._temp_file() as (handle, tmp):
                handle.write(data)
            self._commit(tmp, key)
        return key, digest

    def put_file(self, namespace: str, path: Path, *, suffix: str = "") -> tuple[str, str, int]:
        digest = hashlib.sha256()
        size = 0
        with open(path, "rb") as source, self._temp_file() as (handle, tmp):
            while chunk := source.read(CHUNK_BYTES):
                digest.update(chunk)
                handle.write(chunk)
                size += len(chunk)
        key = f"{namespace}/{digest.hexdigest()}{suffix}"
        self._commit(tmp, key)
        return key, digest.hexdigest(), size

    def put_at(self, key: str, path: Path, *, sha256: str | None = None) -> int:
        size = Path(path).stat().st_size
        try:  # a rename on the same file system: no copy of a large checkpoint
            final = self._path(key)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, final)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            with open(path, "rb") as source, self._temp_file() as (handle, tmp):
                shutil.copyfileobj(source, handle, CHUNK_BYTES)
            self._commit(tmp, key)
            Path(path).unlink()
        return size

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def open(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def iter_bytes(self, key: str) -> Iterator[bytes]:
        with self.open(key) as handle:
            while chunk := handle.read(CHUNK_BYTES):
                yield chunk

    def local_path(self, key: str) -> Path:
        return self._path(key)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def download_url(self, key: str, filename: str) -> str | None:
        return None

    def delete_prefix(self, prefix: str) -> int:
        root = self._path(prefix.rstrip("/"))
        if not root.exists():
            return 0
        count = sum(1 for path in root.rglob("*") if path.is_file()) if root.is_dir() else 1
        if root.is_dir():
            shutil.rmtree(root)
        else:
            root.unlink()
        return count


@contextmanager
def refusing_os_errors(namespace: str) -> Iterator[None]:
    """For a request's write: an OSError becomes `StorageFull` (507, a full disk) or
    `StorageUnavailable` (503, e.g. a store that is not writable); the path is logged, never
    shown to the client."""
    try:
        yield
    except OSError as exc:
        log.error("blob store refused a write to %s: %s", namespace, exc)
        if exc.errno == errno.ENOSPC:
            raise StorageFull("the server's data disk is full; retry later") from exc
        raise StorageUnavailable("the server cannot store files right now; retry later") from exc


def store_file_or_refuse(store: BlobStore, namespace: str, path: Path, *, sha256: str,
                         suffix: str = "") -> str:
    """Move the file at ``path`` (a spooled upload whose SHA-256 the caller computed while
    writing it) into the store as ``<namespace>/<sha256><suffix>``, unless those bytes are
    there already; returns the key. Errors as `refusing_os_errors`; no partial object is
    left (a local write is a rename or an atomic copy, an S3 one a multipart upload that is
    either completed or aborted)."""
    key = f"{namespace}/{sha256}{suffix}"
    with refusing_os_errors(namespace):
        if not store.exists(key):
            store.put_at(key, path, sha256=sha256)
    return key
