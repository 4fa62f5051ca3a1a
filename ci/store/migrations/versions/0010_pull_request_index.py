"""An index for a repository's pull request builds, newest first per pull request.

The pull requests view reads the newest build of each pull request; without this index
it read every pull request build of the repository (37 ms with 3,000 of them).

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_builds_repo_pr", "builds", ["repo_id", "pr_number", "number"])


def downgrade() -> None:
    op.drop_index("ix_builds_repo_pr", table_name="builds")
