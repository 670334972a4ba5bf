"""`AsyncClient`: the same calls as `Client`, awaited (asyncio or trio through httpx).

    async with AsyncClient() as gt:
        job = await gt.jobs.create(model="smollm2-135m-instruct", training_dataset=data_id)
        async for event in gt.jobs.stream_events(job.id):
            print(event.type, event.message)
"""

from __future__ import annotations

import builtins
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
    EventFollower,
    Progress,
    awalk,
    check,
    connection_error,
)
from greentrainer.client._errors import WaitTimeout
from greentrainer.client._sync import _int, download_target
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

    def iter(self, *, status: str | None = None, page_size: int = 100) -> AsyncIterator[Job]:
        return awalk(lambda after: self.list(limit=page_size, after=after, status=status))

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

    def iter_events(self, job_id: str, *, after: int | None = None,
                    page_size: int = 1000) -> AsyncIterator[Event]:
        return awalk(lambda cursor: self.events(job_id, after=_int(cursor), limit=page_size),
                     None if after is None else str(after))

    async def stream_events(self, job_id: str, *, after: int | None = None,
                            timeout_s: float | None = None) -> AsyncIterator[Event]:
        """As `Client.jobs.stream_events`."""
        follower = EventFollower(job_id, after, timeout_s, self._client.options)
        while True:
            path, kwargs = follower.connect()
            try:
                async with self._client.stream("GET", path, **kwargs) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        check(response)
                    async for line in response.aiter_lines():
                        item = follower.feed(line)
                        if item == END:
                            return
                        if isinstance(item, Event):
                            yield item
                delay = follower.dropped(None)
            except httpx.TransportError as exc:
                delay = follower.dropped(exc)
            await anyio.sleep(delay)

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

    def iter(self, *, page_size: int = 100) -> AsyncIterator[Dataset]:
        return awalk(lambda after: self.list(limit=page_size, after=after))

    async def get(self, dataset_id: str) -> Dataset:
        return await self._client.send(calls.get_dataset(dataset_id))

    async def delete(self, dataset_id: str) -> None:
        await self._client.send(calls.delete_dataset(dataset_id))
