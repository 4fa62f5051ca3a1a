"""Per job: the last runner event applied, and how often a runner was lost running it.

``event_seq`` lets several recorders share the events stream: each applies an event only
when it is the next one of its job's attempt, so events are applied once and in order.
``runner_losses`` lets a job lost with its runner be tried once more on another runner.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("event_seq", sa.Integer(), nullable=False,
                                      server_default="0"))
        batch_op.add_column(sa.Column("runner_losses", sa.Integer(), nullable=False,
                                      server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_column("runner_losses")
        batch_op.drop_column("event_seq")
