"""aip_versions, aip_version_files: the versions of an AIP (storage/aip/versions.py) and the
logical files of each, mapped to the stored object that holds their bytes

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
        "aip_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("aip_uuid", sa.String(36), sa.ForeignKey("aips.uuid"), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("agent", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("supersedes", sa.Integer(), nullable=True),
        sa.Column("inventory", sa.Text(), nullable=True),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("file_count", sa.Integer(), nullable=False),
        sa.Column("bytes_added", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("aip_uuid", "number"),
    )
    op.create_index("ix_aip_versions_aip_uuid", "aip_versions", ["aip_uuid"])
    op.create_table(
        "aip_version_files",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("aip_uuid", sa.String(36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("stored_path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("change", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("aip_uuid", "version", "path"),
    )
    op.create_index("ix_aip_version_files_aip_version", "aip_version_files",
                    ["aip_uuid", "version"])


def downgrade() -> None:
    op.drop_index("ix_aip_version_files_aip_version", table_name="aip_version_files")
    op.drop_table("aip_version_files")
    op.drop_index("ix_aip_versions_aip_uuid", table_name="aip_versions")
    op.drop_table("aip_versions")
