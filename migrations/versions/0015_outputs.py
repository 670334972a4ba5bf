"""Data set kinds and validation loss: a data set is source/target pairs or OpenAI chat rows
(``datasets.kind``), and each epoch records its loss on the job's validation data set
(``job_epochs.validation_loss``).

Revision ID: 0015
Revises: 0014a
Create Date: 2026-12-03 13:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTERs, not batch mode: SQLite would copy `datasets`, which other tables reference.
    op.add_column("datasets", sa.Column("kind", sa.String(length=16), nullable=False,
                                        server_default="pairs"))
    op.add_column("job_epochs", sa.Column("validation_loss", sa.Double(), nullable=True))


def downgrade() -> None:
    op.drop_column("job_epochs", "validation_loss")
    op.drop_column("datasets", "kind")
