"""fixity audits, API keys and audit-log anchors

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "fixity_runs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("finished_at", TZ, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("depth", sa.String(8), nullable=False),
        sa.Column("scope", sa.JSON(), nullable=False),
        sa.Column("scope_key", sa.String(255), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_fixity_runs_status", "fixity_runs", ["status"])
    op.create_index("ix_fixity_runs_scope_key", "fixity_runs", ["scope_key"])
    op.create_table(
        "fixity_run_items",
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("aip_uuid", sa.String(36), nullable=False),
        sa.Column("location", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("check_id", sa.String(36), nullable=True),
        sa.PrimaryKeyConstraint("run_id", "aip_uuid", "location"),
    )
    op.create_index("ix_fixity_run_items_state", "fixity_run_items",
                    ["run_id", "state", "position"])
    op.create_table(
        "fixity_progress",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("aip_uuid", sa.String(36), nullable=False),
        sa.Column("location", sa.String(64), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("results", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_fixity_progress_copy", "fixity_progress",
                    ["run_id", "aip_uuid", "location"])
    op.create_table(
        "fixity_checks",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("run_id", sa.String(36), nullable=True),
        sa.Column("aip_uuid", sa.String(36), nullable=False),
        sa.Column("location", sa.String(64), nullable=False),
        sa.Column("depth", sa.String(8), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("finished_at", TZ, nullable=False),
        sa.Column("outcome", sa.String(8), nullable=False),
        sa.Column("files", sa.Integer(), nullable=False),
        sa.Column("files_read", sa.Integer(), nullable=False),
        sa.Column("bytes_read", sa.BigInteger(), nullable=False),
        sa.Column("algorithms", sa.JSON(), nullable=False),
        sa.Column("tool", sa.String(128), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=True),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_fixity_checks_copy", "fixity_checks",
                    ["aip_uuid", "location", "depth", "finished_at"])
    op.create_table(
        "fixity_repairs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("aip_uuid", sa.String(36), nullable=False),
        sa.Column("location", sa.String(64), nullable=False),
        sa.Column("check_id", sa.String(36), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("decided_by", sa.String(128), nullable=True),
        sa.Column("decided_at", TZ, nullable=True),
        sa.Column("finished_at", TZ, nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_fixity_repairs_aip_uuid", "fixity_repairs", ["aip_uuid"])
    op.create_index("ix_fixity_repairs_status", "fixity_repairs", ["status"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(16), nullable=False),
        sa.Column("username", sa.String(128), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("revoked_at", TZ, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
    )
    op.create_index("ix_api_keys_username", "api_keys", ["username"])
    op.create_table(
        "audit_anchors",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("location", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("written_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("audit_anchors")
    op.drop_index("ix_api_keys_username", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_index("ix_fixity_repairs_status", table_name="fixity_repairs")
    op.drop_index("ix_fixity_repairs_aip_uuid", table_name="fixity_repairs")
    op.drop_table("fixity_repairs")
    op.drop_index("ix_fixity_checks_copy", table_name="fixity_checks")
    op.drop_table("fixity_checks")
    op.drop_index("ix_fixity_progress_copy", table_name="fixity_progress")
    op.drop_table("fixity_progress")
    op.drop_index("ix_fixity_run_items_state", table_name="fixity_run_items")
    op.drop_table("fixity_run_items")
    op.drop_index("ix_fixity_runs_scope_key", table_name="fixity_runs")
    op.drop_index("ix_fixity_runs_status", table_name="fixity_runs")
    op.drop_table("fixity_runs")
