"""Profiles, 档号 and retention: the 档号 register, encrypted personal identifiers, access
columns of AIPs.

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "archival_code_buckets",
        sa.Column("bucket", sa.String(length=128), nullable=False),
        sa.Column("last_number", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("bucket"),
    )
    op.create_table(
        "archival_codes",
        sa.Column("code", sa.String(length=128), nullable=False),
        sa.Column("bucket", sa.String(length=128), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("transfer", sa.String(length=64), nullable=False),
        sa.Column("row_key", sa.String(length=64), nullable=True),
        sa.Column("generated", sa.Boolean(), nullable=False),
        sa.Column("aip_uuid", sa.String(length=36), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code"),
    )
    with op.batch_alter_table("archival_codes", schema=None) as batch_op:
        batch_op.create_index("ix_archival_codes_bucket", ["bucket"], unique=False)
        batch_op.create_index("ix_archival_codes_transfer", ["transfer"], unique=False)
        batch_op.create_index("ix_archival_codes_aip_uuid", ["aip_uuid"], unique=False)
    op.create_table(
        "pii_values",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("aip_uuid", sa.String(length=36), nullable=False),
        sa.Column("item_key", sa.String(length=32), nullable=False),
        sa.Column("field", sa.String(length=64), nullable=False),
        sa.Column("lookup", sa.String(length=64), nullable=False),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("pii_values", schema=None) as batch_op:
        batch_op.create_index("ix_pii_values_aip_uuid", ["aip_uuid"], unique=False)
        batch_op.create_index("ix_pii_values_lookup", ["lookup"], unique=False)
    with op.batch_alter_table("aips", schema=None) as batch_op:
        batch_op.add_column(sa.Column("control_id", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("pii_level", sa.String(length=16), nullable=True))
    # codes catalogued before the register existed join it as assigned (one per code)
    op.execute(
        "INSERT INTO archival_codes (code, bucket, number, width, level, state, transfer, "
        "generated, aip_uuid, at) "
        "SELECT archival_code, '', 0, 4, MIN(level), 'assigned', 'catalogue', FALSE, "
        "MIN(aip_uuid), CURRENT_TIMESTAMP FROM items WHERE archival_code IS NOT NULL "
        "GROUP BY archival_code")


def downgrade() -> None:
    with op.batch_alter_table("aips", schema=None) as batch_op:
        batch_op.drop_column("pii_level")
        batch_op.drop_column("control_id")
    op.drop_table("pii_values")
    op.drop_table("archival_codes")
    op.drop_table("archival_code_buckets")
