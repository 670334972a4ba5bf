"""How the API hands out an artifact's bytes: a local file as it is; an object in S3 either
streamed through the API (``proxy``) or by a 307 to a presigned URL (``redirect``,
GREENTRAINER_STORAGE__ARTIFACT_DOWNLOAD), so that large models need not pass through the API."""

from __future__ import annotations

from itertools import chain

from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse

from service.models import Artifact
from service.settings import StorageSettings
from service.storage import BlobStore, LocalBlobStore


def artifact_response(store: BlobStore, storage: StorageSettings, artifact: Artifact) -> Response:
    """The response that delivers ``artifact``. Raises `StorageUnavailable` (503) when the
    object store does not answer, before any byte is sent."""
    disposition = f'attachment; filename="{artifact.filename}"'
    if isinstance(store, LocalBlobStore):
        return FileResponse(store.local_path(artifact.storage_key), filename=artifact.filename,
                            media_type="application/octet-stream")
    if storage.artifact_download == "redirect":
        url = store.download_url(artifact.storage_key, artifact.filename)
        if url is not None:
            return RedirectResponse(url, status_code=307)
    chunks = store.iter_bytes(artifact.storage_key)
    # The first chunk is read here, so that a store that is down is a 503 and not a broken
    # 200; a checksum mismatch at the end aborts the transfer (short of Content-Length).
    first = next(chunks, b"")
    return StreamingResponse(chain([first], chunks), media_type="application/octet-stream",
                             headers={"Content-Disposition": disposition,
                                      "Content-Length": str(artifact.size_bytes)})
