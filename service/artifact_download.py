"""How the API hands out a stored file's bytes (an artifact, a checkpoint, a data set): a local
file as it is; an object in S3 either streamed through the API in 1 MiB chunks (``proxy``) or by
a 307 to a presigned URL (``redirect``, GREENTRAINER_STORAGE__ARTIFACT_DOWNLOAD), so that large
models need not pass through the API. Neither reads the object into memory, nor into the API
machine's disk cache."""

from __future__ import annotations

from itertools import chain
from urllib.parse import quote

from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse

from service.models import Artifact
from service.settings import StorageSettings
from service.storage import BlobStore, LocalBlobStore


def _disposition(filename: str) -> str:
    """Content-Disposition as Starlette's FileResponse writes it: a name that is not plain
    ASCII (or holds quotes, line breaks) goes percent-encoded in ``filename*``."""
    quoted = quote(filename)
    if quoted != filename:
        return f"attachment; filename*=utf-8''{quoted}"
    return f'attachment; filename="{filename}"'


def blob_response(store: BlobStore, storage: StorageSettings, key: str, filename: str,
                  size_bytes: int) -> Response:
    """The response that delivers the object at ``key`` as ``filename``. Raises
    `StorageUnavailable` (503) when the object store does not answer, before any byte is
    sent."""
    if isinstance(store, LocalBlobStore):
        return FileResponse(store.local_path(key), filename=filename,
                            media_type="application/octet-stream")
    if storage.artifact_download == "redirect":
        url = store.download_url(key, filename)
        if url is not None:
            return RedirectResponse(url, status_code=307)
    chunks = store.iter_bytes(key)
    # The first chunk is read here, so that a store that is down is a 503 and not a broken
    # 200; a checksum mismatch at the end aborts the transfer (short of Content-Length).
    first = next(chunks, b"")
    return StreamingResponse(chain([first], chunks), media_type="application/octet-stream",
                             headers={"Content-Disposition": _disposition(filename),
                                      "Content-Length": str(size_bytes)})


def artifact_response(store: BlobStore, storage: StorageSettings, artifact: Artifact) -> Response:
    """`blob_response` for a job's artifact."""
    return blob_response(store, storage, artifact.storage_key, artifact.filename,
                         artifact.size_bytes)
