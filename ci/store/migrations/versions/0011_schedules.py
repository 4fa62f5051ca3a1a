"""Schedules: a cron expression per repository and branch that builds the branch's head.

Each row keeps the next time it is due, so whichever recorder runs next, after however
long, knows what to build; the last time it built for, the build that made, and why the
last time made none.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repo_id", sa.Integer(), nullable=False),
        sa.Column("branch", sa.String(length=255), nullable=False),
        sa.Column("expression", sa.String(length=100), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("next_due", sa.DateTime(), nullable=False),
        sa.Column("last_slot", sa.DateTime(), nullable=True),
        sa.Column("last_build_id", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["repo_id"], ["repos.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["last_build_id"], ["builds.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_schedules_repo", "schedules", ["repo_id"])
    op.create_index("ix_schedules_next_due", "schedules", ["next_due"])


def downgrade() -> None:
    op.drop_index("ix_schedules_next_due", table_name="schedules")
    op.drop_index("ix_schedules_repo", table_name="schedules")
    op.drop_table("schedules")
