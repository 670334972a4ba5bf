"""`Client`: the blocking client.

    from greentrainer.client import Client

    with Client() as gt:                  # GREENTRAINER_BASE_URL, GREENTRAINER_API_KEY
        data = gt.datasets.upload("train.jsonl")
        job = gt.jobs.create(model="smollm2-135m-instruct", training_dataset=data.id)
        for event in gt.jobs.stream_events(job.id):
            print(event.type, event.message)
        job = gt.jobs.wait(job.id)
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx

from greentrainer.client import _calls as calls
from greentrainer.client._base import (
    END,
    RETRY_STATUSES,
    Call,
    ClientOptions,
    Progress,
    SSEDecoder,
    check,
    connection_error,
    stream_headers,
    stream_timeout,
)
from greentrainer.client._errors import APIConnectionError, WaitTimeout
from greentrainer.client._types import Artifact, Dataset, Epoch, Event, Job, Page

T = TypeVar("T")


class Client:
    """A GreenTrainer API client. ``base_url`` and ``api_key`` default to the variables
    GREENTRAINER_BASE_URL and GREENTRAINER_API_KEY. Calls that fail on the way (connection
    refused or reset, 429, 5xx) are retried ``max_retries`` times with backoff; every error is a
    `GreenTrainerError`."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *,
                 timeout_s: float = 30.0, max_retries: int = 3, backoff_s: float = 0.5,
                 http_client: httpx.Client | None = None) -> None:
        self.options = ClientOptions.resolve(base_url, api_key, timeout_s=timeout_s,
                                             max_retries=max_retries, backoff_s=backoff_s)
        self._http = http_client or httpx.Client(timeout=timeout_s)
        self._http.base_url = httpx.URL(self.options.base_url)
        self._http.headers.update(self.options.headers())
        self.jobs = Jobs(self)
        self.datasets = Datasets(self)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def send(self, call: Call[T]) -> T:
        """Send ``call``, retrying what is worth retrying; its parsed answer."""
        attempt = 0
        while True:
            attempt += 1
            response: httpx.Response | None = None
            try:
                response = self._http.request(call.method, call.path, **call.request_kwargs())
            except httpx.TransportError as exc:
                if attempt > self.options.max_retries:
                    raise connection_error(exc, self.options.base_url) from None
            finally:
                if call.upload is not None:
                    call.upload.close()
            if response is not None and (response.status_code not in RETRY_STATUSES
                                         or attempt > self.options.max_retries):
                return call.parse(check(response))
            time.sleep(self.options.retry_delay_s(attempt, response))

    def stream(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._http.stream(method, path, **kwargs)


class Jobs:
    def __init__(self, client: Client) -> None:
        self._client = client

    def create(self, *, model: str, training_dataset: str, idempotency_key: str | None = None,
               **options: Any) -> Job:
        """Submit a job (options: validation_dataset, test_dataset, method, hyperparameters,
        rho_policy, gpu_class, as `POST /jobs` takes them). Retries reuse one Idempotency-Key,
        so a retried submission never makes a second job."""
        body = calls.job_body(model, training_dataset, **options)
        return self._client.send(calls.create_job(body, idempotency_key))

    def list(self, *, limit: int = 20, after: str | None = None,
             status: str | None = None) -> Page[Job]:
        """One page of the team's jobs, newest first."""
        return self._client.send(calls.list_jobs(limit, after, status))

    def iter(self, *, status: str | None = None, page_size: int = 100) -> Iterator[Job]:
        """Every job, page after page."""
        after: str | None = None
        while True:
            page = self.list(limit=page_size, after=after, status=status)
            yield from page.data
            if not page.has_more or page.last_id is None:
                return
            after = page.last_id

    def get(self, job_id: str) -> Job:
        return self._client.send(calls.get_job(job_id))

    def cancel(self, job_id: str) -> Job:
        return self._client.send(calls.job_action(job_id, "cancel"))

    def pause(self, job_id: str) -> Job:
        """Pause: a queued job at once, a running one at its next epoch boundary."""
        return self._client.send(calls.job_action(job_id, "pause"))

    def resume(self, job_id: str) -> Job:
        """Put a paused job back in the queue."""
        return self._client.send(calls.job_action(job_id, "resume"))

    def events(self, job_id: str, *, after: int | None = None, limit: int = 100) -> Page[Event]:
        """One page of the job's stored events, oldest first."""
        return self._client.send(calls.list_events(job_id, after, limit))

    def iter_events(self, job_id: str, *, after: int | None = None,
                    page_size: int = 1000) -> Iterator[Event]:
        """Every stored event after ``after``, page after page (does not wait for new ones)."""
        while True:
            page = self.events(job_id, after=after, limit=page_size)
            yield from page.data
            if not page.has_more or not page.data:
                return
            after = page.data[-1].id

    def stream_events(self, job_id: str, *, after: int | None = None,
                      timeout_s: float | None = None) -> Iterator[Event]:
        """The job's events as they happen (Server-Sent Events), from the first (or the one
        after ``after``) until the job has finished and its last event is out. A dropped
        connection is resumed where it stopped (Last-Event-ID). With ``timeout_s``, raises
        `WaitTimeout` when the job is still going after that long."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        last, failures = after, 0
        options = self._client.options
        while True:
            decoder = SSEDecoder()
            try:
                with self._client.stream("GET", calls.events_path(job_id), params={"stream": "true"},
                                         headers=stream_headers(last),
                                         timeout=stream_timeout(options.timeout_s)) as response:
                    if response.status_code >= 400:
                        response.read()
                        check(response)
                    for line in response.iter_lines():
                        item = decoder.feed(line)
                        if isinstance(item, Event):
                            last, failures = item.id, 0
                            yield item
                        elif item == END:
                            return
                        if deadline is not None and time.monotonic() > deadline:
                            raise WaitTimeout(f"job {job_id} still going after {timeout_s:g} s")
            except httpx.TransportError as exc:
                failures += 1
                if failures > options.max_retries:
                    raise connection_error(exc, options.base_url) from None
                time.sleep(options.retry_delay_s(failures, None))
                continue
            # The server closed the stream without its end event (a restart): resume.
            failures += 1
            if failures > options.max_retries:
                raise APIConnectionError(f"the event stream of job {job_id} kept closing early")

    def wait(self, job_id: str, *, timeout_s: float | None = None) -> Job:
        """Block until the job has finished (succeeded, failed or cancelled); the job then.
        Raises `WaitTimeout` (with the job as last seen) after ``timeout_s``."""
        try:
            for _event in self.stream_events(job_id, timeout_s=timeout_s):
                pass
        except WaitTimeout as exc:
            exc.job = self.get(job_id)
            raise
        return self.get(job_id)

    def checkpoints(self, job_id: str) -> builtins.list[Epoch]:
        """The finished epochs, each with its checkpoint's metrics (rho, loss, FLOPs, energy,
        CO2), oldest first."""
        return self._client.send(calls.list_epochs(job_id))

    def artifacts(self, job_id: str) -> builtins.list[Artifact]:
        return self._client.send(calls.list_artifacts(job_id))

    def download(self, job_id: str, artifact_id: str, destination: str | Path, *,
                 progress: Progress | None = None) -> Path:
        """Stream an artifact to ``destination`` (a file, or a directory to put it in under its
        own name); the path written. The file appears only once complete."""
        destination = Path(destination)
        with self._client.stream("GET", calls.artifact_path(job_id, artifact_id)) as response:
            if response.status_code >= 400:
                response.read()
                check(response)
            target = download_target(destination, response)
            total = int(response.headers.get("Content-Length") or 0)
            partial = target.with_name(target.name + ".part")
            done = 0
            with open(partial, "wb") as out:
                for chunk in response.iter_bytes(1 << 16):
                    out.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
            partial.replace(target)
        return target


def download_target(destination: Path, response: httpx.Response) -> Path:
    """``destination`` itself, or the server's file name inside it when it is a directory."""
    if not destination.is_dir():
        return destination
    name = response.headers.get("Content-Disposition", "")
    filename = name.split("filename=", 1)[1].strip('"; ') if "filename=" in name else "download"
    return destination / Path(filename).name


class Datasets:
    def __init__(self, client: Client) -> None:
        self._client = client

    def upload(self, path: str | Path, *, name: str | None = None, format: str | None = None,
               source_field: str | None = None, target_field: str | None = None,
               progress: Progress | None = None) -> Dataset:
        """Upload a JSONL, CSV or Parquet file, streamed; ``progress(sent, total)`` is called as
        it goes. Uploading the same bytes again returns the data set already stored."""
        return self._client.send(calls.upload_dataset(
            path, name=name, format=format, source_field=source_field,
            target_field=target_field, progress=progress))

    def list(self, *, limit: int = 20, after: str | None = None) -> Page[Dataset]:
        return self._client.send(calls.list_datasets(limit, after))

    def iter(self, *, page_size: int = 100) -> Iterator[Dataset]:
        after: str | None = None
        while True:
            page = self.list(limit=page_size, after=after)
            yield from page.data
            if not page.has_more or page.last_id is None:
                return
            after = page.last_id

    def get(self, dataset_id: str) -> Dataset:
        return self._client.send(calls.get_dataset(dataset_id))

    def delete(self, dataset_id: str) -> None:
        self._client.send(calls.delete_dataset(dataset_id))
