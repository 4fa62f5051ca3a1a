"""Fair queueing: a repository's own limit of jobs running at once (None: the
administrator's maximum, ``SLIPWAY_MAX_JOBS_PER_REPO``).

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("repos") as batch:
        batch.add_column(sa.Column("max_concurrent_jobs", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("repos") as batch:
        batch.drop_column("max_concurrent_jobs")
