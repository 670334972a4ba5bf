"""Every call of the native API (`service/routers/jobs.py`, `service/routers/datasets.py`) as a
`Call`: its method, path, body and how its answer becomes a typed record. The sync and the async
client send the same calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from greentrainer.client._base import Call, Progress, Upload, json_of
from greentrainer.client._types import Artifact, Dataset, Epoch, Event, Job, Page


def _id(value: str) -> str:
    # An id goes into the path: quoted, so that "../teams" or "a/b" is one (unknown) id.
    return quote(str(value), safe="")


def _job(response: httpx.Response) -> Job:
    return Job.from_json(json_of(response))


def _dataset(response: httpx.Response) -> Dataset:
    return Dataset.from_json(json_of(response))


def _page(item: type[Any]) -> Any:
    return lambda response: Page.from_json(json_of(response), item)


def _list(item: type[Any]) -> Any:
    return lambda response: [item.from_json(row) for row in json_of(response)]


def _none(_response: httpx.Response) -> None:
    return None


def create_job(body: dict[str, Any], idempotency_key: str | None) -> Call[Job]:
    return Call("POST", "/jobs", _job, json=body, idempotency_key=idempotency_key)


def list_jobs(limit: int, after: str | None, status: str | None) -> Call[Page[Job]]:
    return Call("GET", "/jobs", _page(Job), params={"limit": limit, "after": after,
                                                    "status": status})


def get_job(job_id: str) -> Call[Job]:
    return Call("GET", f"/jobs/{_id(job_id)}", _job)


def job_action(job_id: str, action: str) -> Call[Job]:
    """cancel, pause or resume: each answers the job as it is now."""
    return Call("POST", f"/jobs/{_id(job_id)}/{action}", _job)


def list_events(job_id: str, after: int | None, limit: int) -> Call[Page[Event]]:
    return Call("GET", f"/jobs/{_id(job_id)}/events", _page(Event),
                params={"after": after, "limit": limit})


def list_epochs(job_id: str) -> Call[list[Epoch]]:
    return Call("GET", f"/jobs/{_id(job_id)}/epochs", _list(Epoch))


def list_artifacts(job_id: str) -> Call[list[Artifact]]:
    return Call("GET", f"/jobs/{_id(job_id)}/artifacts", _list(Artifact))


def events_path(job_id: str) -> str:
    return f"/jobs/{_id(job_id)}/events"


def artifact_path(job_id: str, artifact_id: str) -> str:
    return f"/jobs/{_id(job_id)}/artifacts/{_id(artifact_id)}/content"


def upload_dataset(path: str | Path, *, name: str | None, format: str | None,
                   source_field: str | None, target_field: str | None,
                   progress: Progress | None) -> Call[Dataset]:
    """Raises FileNotFoundError / IsADirectoryError for a path that is not a readable file
    before anything is sent."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {str(path)!r}")
    if not path.is_file():
        raise IsADirectoryError(f"not a file: {str(path)!r}")
    form = {"name": name, "format": format, "source_field": source_field,
            "target_field": target_field}
    return Call("POST", "/datasets", _dataset, upload=Upload(path, progress),
                data={k: v for k, v in form.items() if v is not None})


def list_datasets(limit: int, after: str | None) -> Call[Page[Dataset]]:
    return Call("GET", "/datasets", _page(Dataset), params={"limit": limit, "after": after})


def get_dataset(dataset_id: str) -> Call[Dataset]:
    return Call("GET", f"/datasets/{_id(dataset_id)}", _dataset)


def delete_dataset(dataset_id: str) -> Call[None]:
    return Call("DELETE", f"/datasets/{_id(dataset_id)}", _none)


def job_body(model: str, training_dataset: str, **options: Any) -> dict[str, Any]:
    """The body of `POST /jobs` (service/schemas.py JobCreate); options left None are left out,
    so the server's defaults apply."""
    return {"model": model, "training_dataset": training_dataset,
            **{k: v for k, v in options.items() if v is not None}}
