"""storage copies and replication: the retention locks applied to each copy

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retention_locks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("aip_uuid", sa.String(length=36), nullable=False),
        sa.Column("location", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("retain_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("legal_hold", sa.Boolean(), nullable=False),
        sa.Column("enforced_by", sa.String(length=16), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["aip_uuid"], ["aips.uuid"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("aip_uuid", "location"),
    )
    with op.batch_alter_table("retention_locks", schema=None) as batch_op:
        batch_op.create_index("ix_retention_locks_aip_uuid", ["aip_uuid"], unique=False)


def downgrade() -> None:
    op.drop_table("retention_locks")
