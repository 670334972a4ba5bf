"""First-run setup for `greentrainer up`: an admin key, and with ``--demo`` a demo team, the
shipped sample data set and a short job on the shipped SmolLM2."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from greentrainer_carbon.rho_policy import DEFAULT_RHO, RhoPolicyKind
from service.auth import create_api_key, hash_key
from service.datasets import create_dataset, spool_upload
from service.errors import InvalidInput
from service.jobs import submit_job
from service.model_ref import DEFAULT_MODEL
from service.models import ApiKey, Team
from service.schemas import FixedRho, Hyperparameters, JobCreate, TeamCreate
from service.settings import Settings
from service.storage import BlobStore
from service.teams import create_team

# The sample data sets `up --demo` uploads (XSum, shipped by the core; their licence and source
# are noted next to them). The one place that names them.
_SAMPLE_DATA = Path(__file__).resolve().parent.parent / "greentrainer_core" / "sample_data"
DEMO_DATASET_PATH = _SAMPLE_DATA / "xsum_demo_train.jsonl"
DEMO_TEST_DATASET_PATH = _SAMPLE_DATA / "xsum_demo_test.jsonl"
DEMO_TEAM = "demo"
ADMIN_KEY_FILE = "admin.key"
DEMO_KEY_FILE = "demo.key"


@dataclass(frozen=True)
class DemoSetup:
    team_id: str
    team_key: str
    dataset_id: str
    test_dataset_id: str | None
    job_id: str
    job_created: bool


def _read_key(session: Session, path: Path) -> str | None:
    """The key saved at ``path`` if it is still a live key in this database."""
    if not path.is_file():
        return None
    key = path.read_text().strip()
    row = session.scalar(select(ApiKey).where(ApiKey.key_sha256 == hash_key(key)))
    return key if row is not None and row.revoked_at is None else None


def _save_key(path: Path, key: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")


def ensure_admin_key(session: Session, data_dir: Path) -> str:
    """The embedded admin key: reused from ``<data_dir>/admin.key`` (mode 0600) if it is still
    valid, else a new one is stored (hashed) and saved there."""
    path = data_dir / ADMIN_KEY_FILE
    key = _read_key(session, path)
    if key is None:
        _, key = create_api_key(session, team_id=None, is_admin=True)
        _save_key(path, key)
    return key


def _upload(session: Session, store: BlobStore, settings: Settings, team_id: str, path: Path,
            name: str) -> str:
    with open(path, "rb") as source, spool_upload(source, settings) as upload:
        dataset, _ = create_dataset(
            session, store, team_id=team_id, upload=upload, filename=path.name,
            declared_format=None, name=name, source_field=None, target_field=None,
            settings=settings)
    return dataset.id


def ensure_demo(session: Session, store: BlobStore, settings: Settings,
                dataset_path: Path = DEMO_DATASET_PATH,
                test_dataset_path: Path | None = DEMO_TEST_DATASET_PATH) -> DemoSetup:
    """Create (or reuse) the demo team, upload the sample training (and test) data set and
    submit a short job, evaluated with ROUGE on the test set when there is one."""
    for path in (dataset_path, test_dataset_path):
        if path is not None and not path.is_file():
            raise InvalidInput(f"the demo data set {path} is missing from this install",
                               field="demo_dataset")
    team = session.scalar(select(Team).where(Team.name == DEMO_TEAM))
    key_path = Path(settings.data_dir) / DEMO_KEY_FILE
    key = _read_key(session, key_path) if team is not None else None
    if team is None:
        team, _, key = create_team(session, TeamCreate(name=DEMO_TEAM, max_concurrent_jobs=1))
        _save_key(key_path, key)
    elif key is None:
        _, key = create_api_key(session, team_id=team.id)
        _save_key(key_path, key)
    train_id = _upload(session, store, settings, team.id, dataset_path, "demo sample")
    test_id = None if test_dataset_path is None else _upload(
        session, store, settings, team.id, test_dataset_path, "demo sample (test)")
    request = JobCreate(model=DEFAULT_MODEL, training_dataset=train_id, test_dataset=test_id,
                        method="greentrainer",
                        hyperparameters=Hyperparameters(epochs=1, batch_size=4, max_length=256),
                        rho_policy=FixedRho(type=RhoPolicyKind.FIXED, rho=DEFAULT_RHO))
    job, created = submit_job(session, team.id, request, settings, idempotency_key="up-demo")
    return DemoSetup(team_id=team.id, team_key=key, dataset_id=train_id,
                     test_dataset_id=test_id, job_id=job.id, job_created=created)
