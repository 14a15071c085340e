"""derived_texts: text made from an AIP's files after ingest (OCR by text jobs), beside the AIP

Revision ID: 0012
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "derived_texts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("aip_uuid", sa.String(36), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("engine", sa.String(128), nullable=False),
        sa.Column("languages", sa.String(64), nullable=False),
        sa.Column("ocr_pages", sa.JSON(), nullable=False),
        sa.Column("chars", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_derived_texts_aip_uuid", "derived_texts", ["aip_uuid"])


def downgrade() -> None:
    op.drop_index("ix_derived_texts_aip_uuid", table_name="derived_texts")
    op.drop_table("derived_texts")
