"""What a finished job leaves behind: the fine-tuned model (a tar.gz of a `from_pretrained`
directory), the delta checkpoint (only the tensors that were ever trained) and its metrics."""

from __future__ import annotations

import json
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from greentrainer_core.checkpoint import DELTA_FILE, save_delta, save_model
from greentrainer_core.methods import METHODS
from service.job_records import register_artifact
from service.models import Job
from service.storage import BlobStore


def save_outputs(session: Session, store: BlobStore, job: Job, trainer: Any, tokenizer: Any,
                 metrics: dict[str, Any]) -> list[str]:
    """Write and register the artifacts; returns their file names."""
    names = []
    with tempfile.TemporaryDirectory(prefix=f"gt-{job.id}-") as tmp:
        root = Path(tmp)
        model_dir = save_model(trainer.model, tokenizer, root / "model")
        archive = root / "model.tar.gz"
        # Level 1, not tarfile's default 9: on SmolLM2-135M's 538 MB of (de-quantized) float32
        # weights it was 4.8x faster for 5 % more bytes (ratio 0.66 vs 0.63).
        with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
            tar.add(model_dir, arcname="model")
        register_artifact(session, store, job, archive, kind="model")
        names.append(archive.name)
        if METHODS[job.method].keeps == "delta":
            delta = save_delta(trainer.model, trainer.ever_trained, root / "delta",
                               base_model=job.model)
            register_artifact(session, store, job, delta, kind="delta", filename=DELTA_FILE)
            names.append(DELTA_FILE)
        metrics_file = root / "metrics.json"
        metrics_file.write_text(json.dumps(metrics, indent=2, sort_keys=True))
        register_artifact(session, store, job, metrics_file, kind="metrics")
        names.append(metrics_file.name)
    return names
