"""`AsyncClient`: the same calls as `Client`, awaited (asyncio or trio through httpx).

    async with AsyncClient() as gt:
        job = await gt.jobs.create(model="smollm2-135m-instruct", training_dataset=data_id)
        async for event in gt.jobs.stream_events(job.id):
            print(event.type, event.message)
"""

from __future__ import annotations

import builtins
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
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
from greentrainer.client._sync import download_target
from greentrainer.client._types import Artifact, Dataset, Epoch, Event, Job, Page

T = TypeVar("T")


class AsyncClient:
    """The asynchronous `Client`: same arguments, same retries and errors."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *,
                 timeout_s: float = 30.0, max_retries: int = 3, backoff_s: float = 0.5,
                 http_client: httpx.AsyncClient | None = None) -> None:
        self.options = ClientOptions.resolve(base_url, api_key, timeout_s=timeout_s,
                                             max_retries=max_retries, backoff_s=backoff_s)
        self._http = http_client or httpx.AsyncClient(timeout=timeout_s)
        self._http.base_url = httpx.URL(self.options.base_url)
        self._http.headers.update(self.options.headers())
        self.jobs = AsyncJobs(self)
        self.datasets = AsyncDatasets(self)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def send(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            attempt += 1
            response: httpx.Response | None = None
            try:
                response = await self._http.request(call.method, call.path,
                                                    **call.request_kwargs())
            except httpx.TransportError as exc:
                if attempt > self.options.max_retries:
                    raise connection_error(exc, self.options.base_url) from None
            finally:
                if call.upload is not None:
                    call.upload.close()
            if response is not None and (response.status_code not in RETRY_STATUSES
                                         or attempt > self.options.max_retries):
                return call.parse(check(response))
            await anyio.sleep(self.options.retry_delay_s(attempt, response))

    def stream(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._http.stream(method, path, **kwargs)


class AsyncJobs:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def create(self, *, model: str, training_dataset: str,
                     idempotency_key: str | None = None, **options: Any) -> Job:
        body = calls.job_body(model, training_dataset, **options)
        return await self._client.send(calls.create_job(body, idempotency_key))

    async def list(self, *, limit: int = 20, after: str | None = None,
                   status: str | None = None) -> Page[Job]:
        return await self._client.send(calls.list_jobs(limit, after, status))

    async def iter(self, *, status: str | None = None,
                   page_size: int = 100) -> AsyncIterator[Job]:
        after: str | None = None
        while True:
            page = await self.list(limit=page_size, after=after, status=status)
            for job in page.data:
                yield job
            if not page.has_more or page.last_id is None:
                return
            after = page.last_id

    async def get(self, job_id: str) -> Job:
        return await self._client.send(calls.get_job(job_id))

    async def cancel(self, job_id: str) -> Job:
        return await self._client.send(calls.job_action(job_id, "cancel"))

    async def pause(self, job_id: str) -> Job:
        return await self._client.send(calls.job_action(job_id, "pause"))

    async def resume(self, job_id: str) -> Job:
        return await self._client.send(calls.job_action(job_id, "resume"))

    async def events(self, job_id: str, *, after: int | None = None,
                     limit: int = 100) -> Page[Event]:
        return await self._client.send(calls.list_events(job_id, after, limit))

    async def iter_events(self, job_id: str, *, after: int | None = None,
                          page_size: int = 1000) -> AsyncIterator[Event]:
        while True:
            page = await self.events(job_id, after=after, limit=page_size)
            for event in page.data:
                yield event
            if not page.has_more or not page.data:
                return
            after = page.data[-1].id

    async def stream_events(self, job_id: str, *, after: int | None = None,
                            timeout_s: float | None = None) -> AsyncIterator[Event]:
        """As `Client.jobs.stream_events`."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        last, failures = after, 0
        options = self._client.options
        while True:
            decoder = SSEDecoder()
            try:
                async with self._client.stream(
                        "GET", calls.events_path(job_id), params={"stream": "true"},
                        headers=stream_headers(last),
                        timeout=stream_timeout(options.timeout_s)) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        check(response)
                    async for line in response.aiter_lines():
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
                await anyio.sleep(options.retry_delay_s(failures, None))
                continue
            failures += 1
            if failures > options.max_retries:
                raise APIConnectionError(f"the event stream of job {job_id} kept closing early")

    async def wait(self, job_id: str, *, timeout_s: float | None = None) -> Job:
        try:
            async for _event in self.stream_events(job_id, timeout_s=timeout_s):
                pass
        except WaitTimeout as exc:
            exc.job = await self.get(job_id)
            raise
        return await self.get(job_id)

    async def checkpoints(self, job_id: str) -> builtins.list[Epoch]:
        return await self._client.send(calls.list_epochs(job_id))

    async def artifacts(self, job_id: str) -> builtins.list[Artifact]:
        return await self._client.send(calls.list_artifacts(job_id))

    async def download(self, job_id: str, artifact_id: str, destination: str | Path, *,
                       progress: Progress | None = None) -> Path:
        async with self._client.stream("GET", calls.artifact_path(job_id, artifact_id)) as response:
            if response.status_code >= 400:
                await response.aread()
                check(response)
            target = download_target(Path(destination), response)
            total = int(response.headers.get("Content-Length") or 0)
            partial = target.with_name(target.name + ".part")
            done = 0
            with open(partial, "wb") as out:
                async for chunk in response.aiter_bytes(1 << 16):
                    out.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
            partial.replace(target)
        return target


class AsyncDatasets:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def upload(self, path: str | Path, *, name: str | None = None,
                     format: str | None = None, source_field: str | None = None,
                     target_field: str | None = None,
                     progress: Progress | None = None) -> Dataset:
        return await self._client.send(calls.upload_dataset(
            path, name=name, format=format, source_field=source_field,
            target_field=target_field, progress=progress))

    async def list(self, *, limit: int = 20, after: str | None = None) -> Page[Dataset]:
        return await self._client.send(calls.list_datasets(limit, after))

    async def iter(self, *, page_size: int = 100) -> AsyncIterator[Dataset]:
        after: str | None = None
        while True:
            page = await self.list(limit=page_size, after=after)
            for dataset in page.data:
                yield dataset
            if not page.has_more or page.last_id is None:
                return
            after = page.last_id

    async def get(self, dataset_id: str) -> Dataset:
        return await self._client.send(calls.get_dataset(dataset_id))

    async def delete(self, dataset_id: str) -> None:
        await self._client.send(calls.delete_dataset(dataset_id))
