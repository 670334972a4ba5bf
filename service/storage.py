"""Where uploaded data sets and job artifacts live: one small interface, a local-disk backend.

Keys are content-addressed (``<namespace>/<sha256>[suffix]``) so that the same bytes are stored
once. An object-storage backend implements the same four methods.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol

from service.errors import StorageFull, StorageUnavailable

log = logging.getLogger("service.storage")


class BlobStore(Protocol):
    def put(self, namespace: str, data: bytes, *, suffix: str = "") -> tuple[str, str]:
        """Store ``data``; return (key, sha256 hex)."""
        ...

    def put_file(self, namespace: str, path: Path, *, suffix: str = "") -> tuple[str, str, int]:
        """Store a file's bytes; return (key, sha256 hex, size in bytes)."""
        ...

    def open(self, key: str) -> BinaryIO: ...

    def local_path(self, key: str) -> Path:
        """A filesystem path to the object (the worker reads data sets from it)."""
        ...


class LocalBlobStore:
    """Blobs as files under ``root``; writes are atomic (temp file + rename)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
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
            while chunk := source.read(1 << 20):
                digest.update(chunk)
                handle.write(chunk)
                size += len(chunk)
        key = f"{namespace}/{digest.hexdigest()}{suffix}"
        self._commit(tmp, key)
        return key, digest.hexdigest(), size

    def open(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def local_path(self, key: str) -> Path:
        return self._path(key)


def put_or_refuse(store: BlobStore, namespace: str, data: bytes, *, suffix: str = "") -> str:
    """``store.put`` for a request: its key, or `StorageFull` (507, a full disk) or
    `StorageUnavailable` (503, e.g. a store that is not writable) instead of an OSError; the
    path is logged, never shown to the client, and no partial file is left."""
    try:
        key, _ = store.put(namespace, data, suffix=suffix)
    except OSError as exc:
        log.error("blob store refused a write to %s: %s", namespace, exc)
        if exc.errno == errno.ENOSPC:
            raise StorageFull("the server's data disk is full; retry later") from exc
        raise StorageUnavailable("the server cannot store files right now; retry later") from exc
    return key
