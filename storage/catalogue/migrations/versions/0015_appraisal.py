"""appraisal: batches (鉴定批次) and their entries, holds (冻结), tombstones of destroyed AIPs

Revision ID: 0015
Revises: 0012
"""
import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "appraisal_batches",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("proposer", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("criteria", sa.JSON(), nullable=False),
        sa.Column("submitted_by", sa.String(64)),
        sa.Column("submitted_at", sa.DateTime(timezone=True)),
        sa.Column("submitted_revision", sa.Integer()),
        sa.Column("approver", sa.String(64)),
        sa.Column("approved_at", sa.DateTime(timezone=True)),
        sa.Column("approved_revision", sa.Integer()),
        sa.Column("rejected_by", sa.String(64)),
        sa.Column("rejection_reason", sa.Text()),
        sa.Column("witness", sa.String(64)),
        sa.Column("executed_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "appraisal_entries",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("batch_id", sa.String(32), sa.ForeignKey("appraisal_batches.id"),
                  nullable=False, index=True),
        sa.Column("aip_uuid", sa.String(36), nullable=False, index=True),
        sa.Column("archival_code", sa.String(128)),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("year", sa.String(8)),
        sa.Column("retention_period", sa.String(8)),
        sa.Column("expiry_date", sa.Date()),
        sa.Column("open_date", sa.Date()),
        sa.Column("control_id", sa.String(8)),
        sa.Column("suggested", sa.String(16), nullable=False),
        sa.Column("decision", sa.String(16)),
        sa.Column("reason", sa.Text()),
        sa.Column("decided_by", sa.String(64)),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("outcome_detail", sa.Text(), nullable=False),
        sa.Column("possible_from", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "appraisal_holds",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("aip_uuid", sa.String(36), nullable=False, index=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("placed_by", sa.String(64), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_by", sa.String(64)),
        sa.Column("removed_at", sa.DateTime(timezone=True)),
        sa.Column("removal_reason", sa.Text()),
    )
    op.create_table(
        "appraisal_tombstones",
        sa.Column("aip_uuid", sa.String(36), primary_key=True),
        sa.Column("archival_code", sa.String(128), index=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("retention_period", sa.String(8)),
        sa.Column("expiry_date", sa.Date()),
        sa.Column("batch_id", sa.String(32), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("proposer", sa.String(64), nullable=False),
        sa.Column("approver", sa.String(64), nullable=False),
        sa.Column("witness", sa.String(64), nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("destroyed_at", sa.DateTime(timezone=True)),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("files", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("digests", sa.JSON(), nullable=False),
        sa.Column("copies", sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    for table in ("appraisal_tombstones", "appraisal_holds", "appraisal_entries",
                  "appraisal_batches"):
        op.drop_table(table)
