"""Forge access per repository: an encrypted API token and the API base URL, for
reporting commit statuses.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("repos") as batch_op:
        batch_op.add_column(sa.Column("forge_token", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("api_url", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("repos") as batch_op:
        batch_op.drop_column("api_url")
        batch_op.drop_column("forge_token")
