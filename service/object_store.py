"""The blob store on an S3-protocol bucket (MinIO, AWS S3, ...): what lets workers on several
machines share data sets, checkpoints and artifacts with nothing but the bucket.

boto3 is the client: it is the reference implementation of the protocol, speaks to every
S3-compatible server, and its transfer manager (s3transfer) streams multipart uploads from a file
in bounded parts with retries, which is what "no whole-file reads" needs. obstore is faster but
younger; s3fs adds a filesystem layer and an event loop that we do not use.

Every object carries the SHA-256 of its bytes in its metadata (``x-amz-meta-sha256``); a
download hashes what it reads and refuses bytes that do not match (`ChecksumMismatch`). A
download that stalls or breaks resumes with a ranged GET from the last byte received. Errors
that outlast the retries are `StorageUnavailable`: the API answers 503, a worker's try ends and
the job is re-queued (it resumes from its last stored checkpoint).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from boto3.exceptions import S3TransferFailedError, S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from service.errors import ChecksumMismatch, StorageUnavailable
from service.settings import StorageSettings
from service.storage import CHUNK_BYTES, file_sha256, safe_key

# What breaks a transfer on the wire (a stall, a reset, a 5xx that outlasted botocore's retries).
_FAULTS = (BotoCoreError, ClientError, S3UploadFailedError, S3TransferFailedError, OSError)


class S3BlobStore:
    """Blobs as objects in ``settings.bucket``; downloads cached under ``cache_dir``."""

    def __init__(self, settings: StorageSettings, cache_dir: Path) -> None:
        self.settings, self.cache_dir = settings, Path(cache_dir).resolve()
        self.bucket, self.prefix = settings.bucket, settings.prefix
        self.where = f"{settings.endpoint_url or 'S3'} bucket {settings.bucket}"
        self.client = self._client(settings.endpoint_url)
        # Presigned URLs are signed for the host the client will ask (signatures cover it).
        self.presigner = (self._client(settings.public_endpoint_url)
                          if settings.public_endpoint_url else self.client)
        part = settings.part_size_mib * 1024 * 1024
        # At most max_concurrency parts in memory at once: 4 x 16 MiB by default.
        self.transfer = TransferConfig(multipart_threshold=part, multipart_chunksize=part,
                                       max_concurrency=4, io_chunksize=CHUNK_BYTES)
        self._bucket_ready = False

    def _client(self, endpoint_url: str | None) -> Any:
        s = self.settings
        return boto3.client(
            "s3", endpoint_url=endpoint_url, region_name=s.region,
            aws_access_key_id=s.access_key_id.get_secret_value() if s.access_key_id else None,
            aws_secret_access_key=(s.secret_access_key.get_secret_value()
                                   if s.secret_access_key else None),
            config=Config(connect_timeout=s.connect_timeout_s, read_timeout=s.read_timeout_s,
                          retries={"max_attempts": s.max_attempts, "mode": "standard"},
                          s3={"addressing_style": "path"}, signature_version="s3v4"))

    def _fault(self, what: str, exc: BaseException) -> StorageUnavailable:
        return StorageUnavailable(f"object store {self.where}: {what} failed: {exc}")

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
                raise self._fault("checking the bucket", exc) from exc
            try:
                self.client.create_bucket(Bucket=self.bucket)
            except ClientError as create_exc:  # another process created it first
                if "BucketAlready" not in str(create_exc):
                    raise self._fault("creating the bucket", create_exc) from create_exc
        except _FAULTS as exc:
            raise self._fault("checking the bucket", exc) from exc
        self._bucket_ready = True

    # -- writing ------------------------------------------------------------------------------
    def _upload(self, key: str, source: BinaryIO | Path, digest: str) -> None:
        self._ensure_bucket()
        extra = {"Metadata": {"sha256": digest}}
        try:
            if isinstance(source, Path):
                self.client.upload_file(str(source), self.bucket, self.prefix + key,
                                        ExtraArgs=extra, Config=self.transfer)
            else:
                self.client.upload_fileobj(source, self.bucket, self.prefix + key,
                                           ExtraArgs=extra, Config=self.transfer)
        except _FAULTS as exc:
            raise self._fault(f"uploading {key}", exc) from exc

    def exists(self, key: str) -> bool:
        self._ensure_bucket()
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.prefix + safe_key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise self._fault(f"looking up {key}", exc) from exc
        except _FAULTS as exc:
            raise self._fault(f"looking up {key}", exc) from exc
        return True

    def put(self, namespace: str, data: bytes, *, suffix: str = "") -> tuple[str, str]:
        import io

        digest = hashlib.sha256(data).hexdigest()
        key = f"{namespace}/{digest}{suffix}"
        if not self.exists(key):
            self._upload(key, io.BytesIO(data), digest)
        return key, digest

    def put_file(self, namespace: str, path: Path, *, suffix: str = "") -> tuple[str, str, int]:
        digest, size = file_sha256(path)
        key = f"{namespace}/{digest}{suffix}"
        if not self.exists(key):
            self._upload(key, Path(path), digest)
        return key, digest, size

    def put_at(self, key: str, path: Path, *, sha256: str | None = None) -> int:
        digest, size = (sha256, Path(path).stat().st_size) if sha256 else file_sha256(path)
        self._upload(safe_key(key), Path(path), digest)
        Path(path).unlink()
        return size

    # -- reading ------------------------------------------------------------------------------
    def iter_bytes(self, key: str) -> Iterator[bytes]:
        """The object's bytes in chunks, its SHA-256 checked at the end (`ChecksumMismatch`);
        a broken or stalled read resumes from the last byte received, up to max_attempts."""
        self._ensure_bucket()
        key = safe_key(key)
        digest, offset, expected, failures = hashlib.sha256(), 0, None, 0
        while True:
            try:
                ranged = {"Range": f"bytes={offset}-"} if offset else {}
                response = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key,
                                                  **ranged)
                if expected is None:
                    expected = response.get("Metadata", {}).get("sha256")
                size = int(response["ContentLength"]) + offset
                for chunk in response["Body"].iter_chunks(CHUNK_BYTES):
                    digest.update(chunk)
                    offset += len(chunk)
                    yield chunk
                if offset >= size:
                    break
                raise OSError(f"the response ended after {offset} of {size} bytes")
            except ClientError as exc:
                raise self._fault(f"downloading {key}", exc) from exc
            except _FAULTS as exc:
                failures += 1
                if failures >= self.settings.max_attempts:
                    raise self._fault(f"downloading {key} ({failures} tries)", exc) from exc
        if expected is not None and digest.hexdigest() != expected:
            raise ChecksumMismatch(f"object store {self.where}: {key} has SHA-256 "
                                   f"{digest.hexdigest()}, expected {expected}")

    def local_path(self, key: str) -> Path:
        """The object as a file in this machine's cache (downloaded and verified once)."""
        cached = (self.cache_dir / safe_key(key)).resolve()
        if cached.is_file():
            return cached
        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cached.parent, prefix=".download-")
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in self.iter_bytes(key):
                    handle.write(chunk)
            os.replace(tmp, cached)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return cached

    def open(self, key: str) -> BinaryIO:
        return open(self.local_path(key), "rb")

    def download_url(self, key: str, filename: str) -> str | None:
        """A presigned GET of the object, valid for presign_expiry_s."""
        return str(self.presigner.generate_presigned_url(
            "get_object", ExpiresIn=self.settings.presign_expiry_s,
            Params={"Bucket": self.bucket, "Key": self.prefix + safe_key(key),
                    "ResponseContentDisposition": f'attachment; filename="{filename}"'}))

    # -- lifecycle ----------------------------------------------------------------------------
    def delete(self, key: str) -> None:
        """Remove the object (and this machine's cached copy); a missing one is no error."""
        self._ensure_bucket()
        key = safe_key(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.prefix + key)
        except _FAULTS as exc:
            raise self._fault(f"deleting {key}", exc) from exc
        (self.cache_dir / key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix`` (and this machine's cached copies); returns how
        many objects were deleted."""
        self._ensure_bucket()
        prefix = safe_key(prefix)
        deleted = 0
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix)
            for page in pages:
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:
                    self.client.delete_objects(Bucket=self.bucket,
                                               Delete={"Objects": keys, "Quiet": True})
                    deleted += len(keys)
        except _FAULTS as exc:
            raise self._fault(f"deleting {prefix}", exc) from exc
        shutil.rmtree(self.cache_dir / prefix, ignore_errors=True)
        return deleted
