"""tombstone codes: the 档号 a destroyed AIP held, kept with its tombstone (never reused)

Revision ID: 0017
Revises: 0016
"""
import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("appraisal_tombstones") as batch:
        batch.add_column(sa.Column("codes", sa.JSON(), nullable=False,
                                   server_default=sa.text("'[]'")))


def downgrade() -> None:
    with op.batch_alter_table("appraisal_tombstones") as batch:
        batch.drop_column("codes")
