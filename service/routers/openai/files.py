"""/v1/files: upload (``purpose="fine-tune"``), list, retrieve, delete, content. A file is a
data set (`service.datasets`), the same object as /datasets/{id}; a job's result files (its
artifacts) are files too, with ``purpose="fine-tune-results"``, read by id."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import FileResponse, Response
from sqlalchemy.orm import Session

from service.artifact_download import blob_response
from service.auth import Principal, owned
from service.datasets import create_dataset, delete_dataset, get_dataset, list_datasets, spool_upload
from service.deps import Context, CurrentPrincipal, SessionDep, TeamId
from service.errors import InvalidInput, NotFound
from service.models import Artifact, Dataset, Job
from service.routers.openai.objects import FileDeleted, FileList, FileObject, file_object, result_file_object
from service.text import NulFree

router = APIRouter(prefix="/files", tags=["openai"])
PURPOSE = "fine-tune"
# OpenAI's legacy completion format: {"prompt": ..., "completion": ...} per line.
COMPLETION_FIELDS = ("prompt", "completion")


@router.post("", response_model=FileObject)
def upload_file(context: Context, session: SessionDep, team_id: TeamId,
                file: Annotated[UploadFile, File(description="JSONL training data.")],
                purpose: Annotated[NulFree, Form(max_length=64)]) -> FileObject:
    """Upload a training or validation file (JSONL; ``purpose`` must be ``fine-tune``)."""
    if purpose != PURPOSE:
        raise InvalidInput(f"purpose must be {PURPOSE!r} (this service fine-tunes), not "
                           f"{purpose[:64]!r}", field="purpose")
    settings = context.settings
    # Chat rows (messages), prompt/completion or the service's default fields: detected from
    # the first row (service.datasets.create_dataset). Streamed through disk, as /datasets.
    with spool_upload(file.file, settings) as upload:
        dataset, _ = create_dataset(session, context.store, team_id=team_id, upload=upload,
                                    filename=file.filename or "upload.jsonl",
                                    declared_format="jsonl", name=file.filename,
                                    source_field=None, target_field=None, settings=settings)
    session.commit()
    return file_object(dataset)


@router.get("", response_model=FileList)
def list_files(session: SessionDep, principal: CurrentPrincipal,
               limit: Annotated[int, Query(ge=1, le=10000)] = 10000, after: str | None = None,
               order: Literal["desc"] = "desc",
               purpose: Annotated[str | None, Query(max_length=64)] = None) -> FileList:
    """The team's training files, newest first (result files are listed on their job)."""
    if purpose is not None and purpose != PURPOSE:
        return FileList(data=[], has_more=False)
    rows, has_more = list_datasets(session, None if principal.is_admin else principal.team_id,
                                   after=after, limit=limit)
    data = [file_object(d) for d in rows]
    return FileList(data=data, has_more=has_more, first_id=data[0].id if data else None,
                    last_id=data[-1].id if data else None)


def _result_file(session: Session, file_id: str, principal: Principal) -> Artifact:
    artifact = session.get(Artifact, file_id)
    if artifact is None:
        raise NotFound(f"no file with id {file_id!r}", field="file_id")
    try:
        owned(session, Job, artifact.job_id, principal)
    except NotFound:
        raise NotFound(f"no file with id {file_id!r}", field="file_id") from None
    return artifact


def _training_file(session: Session, file_id: str, principal: Principal) -> Dataset:
    try:
        return get_dataset(session, file_id, principal)
    except NotFound:
        raise NotFound(f"no file with id {file_id!r}", field="file_id") from None


@router.get("/{file_id}", response_model=FileObject)
def retrieve_file(file_id: str, session: SessionDep, principal: CurrentPrincipal) -> FileObject:
    if session.get(Artifact, file_id) is not None:
        return result_file_object(_result_file(session, file_id, principal))
    return file_object(_training_file(session, file_id, principal))


@router.delete("/{file_id}", response_model=FileDeleted)
def delete_file(file_id: str, context: Context, session: SessionDep,
                principal: CurrentPrincipal) -> FileDeleted:
    """Delete a training file (409 while an unfinished job uses it)."""
    if session.get(Artifact, file_id) is not None:
        _result_file(session, file_id, principal)
        raise InvalidInput("a result file is kept with its job and cannot be deleted alone",
                           field="file_id")
    delete_dataset(session, context.store, _training_file(session, file_id, principal))
    return FileDeleted(id=file_id)


@router.get("/{file_id}/content", response_class=FileResponse)
def file_content(file_id: str, context: Context, session: SessionDep,
                 principal: CurrentPrincipal) -> Response:
    """The file's bytes, as uploaded (or as the job wrote them), streamed from the store (or a
    307 to a presigned URL: GREENTRAINER_STORAGE__ARTIFACT_DOWNLOAD=redirect)."""
    if session.get(Artifact, file_id) is not None:
        artifact = _result_file(session, file_id, principal)
        key, name, size = artifact.storage_key, artifact.filename, artifact.size_bytes
    else:
        dataset = _training_file(session, file_id, principal)
        key, name, size = dataset.storage_key, dataset.name, dataset.size_bytes
    session.close()  # release the connection before a long download
    return blob_response(context.store, context.settings.storage, key, name, size)
