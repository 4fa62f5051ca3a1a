"""Matrix cells: each job remembers its cell and whether it may fail.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("cell", sa.Text(), nullable=False, server_default="{}"))
        batch_op.add_column(sa.Column("allow_failure", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_column("allow_failure")
        batch_op.drop_column("cell")
