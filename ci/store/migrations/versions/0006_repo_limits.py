"""Per-repository job limits (memory, CPUs, processes) within the administrator's maxima.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("repos") as batch_op:
        batch_op.add_column(sa.Column("job_memory", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("job_cpus", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("job_pids", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("repos") as batch_op:
        batch_op.drop_column("job_pids")
        batch_op.drop_column("job_cpus")
        batch_op.drop_column("job_memory")
