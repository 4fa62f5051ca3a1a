"""Webhook secrets encrypted at rest: a flag saying which rows already are.

Existing rows keep their clear secret, flagged False, and go on working: a migration
has no encryption key (it lives in the settings), so ``slipway db upgrade`` encrypts
them after the schema is up to date (``ci.accounts.webhook_secrets.encrypt_clear``).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("repos") as batch_op:
        batch_op.add_column(sa.Column("webhook_secret_encrypted", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade() -> None:
    # Without the flag, an encrypted secret would be taken for the secret itself.
    encrypted = op.get_bind().execute(
        sa.text("SELECT count(*) FROM repos WHERE webhook_secret_encrypted")).scalar()
    if encrypted:
        raise RuntimeError(f"{encrypted} repositories have encrypted webhook secrets, which "
                           "revision 0006 cannot read; remove and register them again after "
                           "the downgrade")
    with op.batch_alter_table("repos") as batch_op:
        batch_op.drop_column("webhook_secret_encrypted")
