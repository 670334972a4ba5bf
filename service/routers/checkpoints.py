"""/jobs/{id}/checkpoints: the per-epoch checkpoints of a job, listed with their metrics, and
one of them downloaded."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import FileResponse, Response

from service.artifact_download import artifact_response
from service.checkpoints import checkpoint_artifact, list_checkpoints
from service.deps import Context, OwnedJob, SessionDep
from service.schemas import CheckpointOut

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.get("/{job_id}/checkpoints", response_model=list[CheckpointOut])
def get_checkpoints(job: OwnedJob, session: SessionDep) -> list[CheckpointOut]:
    """One checkpoint per finished epoch: the epoch's trained tensors so far (safetensors, in
    the base model's dtype) or its PEFT adapter (tar.gz), with the epoch's metrics."""
    return list_checkpoints(session, job)


@router.get("/{job_id}/checkpoints/{epoch_index}/content", response_class=FileResponse)
def download_checkpoint(job: OwnedJob, context: Context, session: SessionDep,
                        epoch_index: Annotated[int, Path(ge=0, le=100_000)]) -> Response:
    """The checkpoint file of one epoch (0-based), streamed from the store (or a 307 to a
    presigned URL, as an artifact)."""
    artifact = checkpoint_artifact(session, job, epoch_index)
    session.close()  # release the connection before a long download
    return artifact_response(context.store, context.settings.storage, artifact)
