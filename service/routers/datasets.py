"""/datasets: multipart upload (JSONL, CSV, Parquet), list, read, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Response, UploadFile, status

from service.datasets import (
    create_dataset,
    delete_dataset,
    get_dataset,
    list_datasets,
    spool_upload,
)
from service.deps import Context, CurrentPrincipal, SessionDep, TeamId
from service.schemas import DatasetOut, Page
from service.text import NulFree

router = APIRouter(prefix="/datasets", tags=["datasets"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=DatasetOut,
             responses={200: {"model": DatasetOut, "description": "Same bytes already uploaded."}})
def upload_dataset(
    response: Response, context: Context, session: SessionDep, team_id: TeamId,
    file: Annotated[UploadFile, File(description="JSONL, CSV or Parquet rows.")],
    name: Annotated[NulFree | None, Form(max_length=255)] = None,
    format: Annotated[NulFree | None, Form(description="jsonl | csv | parquet; default: "
                                                       "from the file name")] = None,
    source_field: Annotated[NulFree | None, Form(min_length=1, max_length=100)] = None,
    target_field: Annotated[NulFree | None, Form(min_length=1, max_length=100)] = None,
) -> DatasetOut:
    """Validate and store a data set: pairs (source/target, or prompt/completion) or OpenAI chat
    JSONL (``messages``). A bad file's 422 lists every bad line (row for Parquet) under
    ``error.details``. The file streams to disk, is validated there and moves into the
    store: an upload up to GREENTRAINER_MAX_UPLOAD_BYTES (2 GiB) never sits in memory."""
    settings = context.settings
    with spool_upload(file.file, settings) as upload:
        dataset, created = create_dataset(
            session, context.store, team_id=team_id, upload=upload, filename=file.filename,
            declared_format=format, name=name,
            source_field=source_field, target_field=target_field, settings=settings)
    session.commit()
    if not created:
        response.status_code = status.HTTP_200_OK
    return DatasetOut.model_validate(dataset)


@router.get("", response_model=Page[DatasetOut])
def get_datasets(session: SessionDep, principal: CurrentPrincipal,
                 limit: Annotated[int, Query(ge=1, le=100)] = 20,
                 after: str | None = None) -> Page[DatasetOut]:
    rows, has_more = list_datasets(session, None if principal.is_admin else principal.team_id,
                                   after=after, limit=limit)
    return Page[DatasetOut](data=[DatasetOut.model_validate(d) for d in rows],
                            has_more=has_more, last_id=rows[-1].id if rows else None)


@router.get("/{dataset_id}", response_model=DatasetOut)
def read_dataset(dataset_id: str, session: SessionDep, principal: CurrentPrincipal) -> DatasetOut:
    return DatasetOut.model_validate(get_dataset(session, dataset_id, principal))


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT,
               response_class=Response)
def remove_dataset(dataset_id: str, context: Context, session: SessionDep,
                   principal: CurrentPrincipal) -> Response:
    """Delete a data set (its bytes too). 409 while an unfinished job uses it."""
    delete_dataset(session, context.store, get_dataset(session, dataset_id, principal))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
