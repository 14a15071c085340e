"""portal accounts, access grants and derived text

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("session_version", sa.Integer(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("last_login_at", TZ, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username"),
    )
    op.create_table(
        "login_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("remote", sa.String(64), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_login_attempts_username", "login_attempts", ["username"])
    op.create_index("ix_login_attempts_remote", "login_attempts", ["remote"])
    op.create_index("ix_login_attempts_at", "login_attempts", ["at"])
    op.create_table(
        "access_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("aip_uuid", sa.String(36), nullable=False),
        sa.Column("item_key", sa.String(32), nullable=True),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_at", TZ, nullable=False),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("decided_at", TZ, nullable=True),
        sa.Column("expires_at", TZ, nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_access_requests_username", "access_requests", ["username"])
    op.create_index("ix_access_requests_aip_uuid", "access_requests", ["aip_uuid"])
    op.create_index("ix_access_requests_user_status", "access_requests", ["username", "status"])
    op.create_table(
        "open_decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("aip_uuid", sa.String(36), nullable=False),
        sa.Column("item_key", sa.String(32), nullable=True),
        sa.Column("open_date", sa.Date(), nullable=True),
        sa.Column("control", sa.String(8), nullable=True),
        sa.Column("basis", sa.Text(), nullable=False),
        sa.Column("decided_by", sa.String(64), nullable=False),
        sa.Column("decided_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_open_decisions_aip_uuid", "open_decisions", ["aip_uuid"])
    op.create_index("ix_open_decisions_target", "open_decisions", ["aip_uuid", "item_key"])
    op.create_table(
        "boxes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("code", sa.String(128), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_table(
        "box_members",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("box_id", sa.Integer(), nullable=False),
        sa.Column("aip_uuid", sa.String(36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["box_id"], ["boxes.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("aip_uuid"),
    )
    op.create_index("ix_box_members_box_id", "box_members", ["box_id"])
    op.create_table(
        "label_tokens",
        sa.Column("token", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("aip_uuid", sa.String(36), nullable=True),
        sa.Column("box_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("revoked_at", TZ, nullable=True),
        sa.PrimaryKeyConstraint("token"),
    )
    op.create_index("ix_label_tokens_aip_uuid", "label_tokens", ["aip_uuid"])
    op.create_index("ix_label_tokens_box_id", "label_tokens", ["box_id"])
    op.create_table(
        "search_access",
        sa.Column("doc_id", sa.Integer(), nullable=False),
        sa.Column("aip_uuid", sa.String(36), nullable=False),
        sa.Column("item_key", sa.String(32), nullable=True),
        sa.Column("open_date", sa.String(10), nullable=True),
        sa.Column("control", sa.String(8), nullable=False),
        sa.Column("pii_level", sa.String(16), nullable=False),
        sa.Column("household", sa.Boolean(), nullable=False),
        sa.Column("public_title", sa.Text(), nullable=False),
        sa.Column("public_text", sa.Text(), nullable=False),
        sa.Column("public_facets", sa.Text(), nullable=False),
        sa.Column("policy_version", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("doc_id"),
    )
    op.create_index("ix_search_access_aip_uuid", "search_access", ["aip_uuid"])
    op.create_index("ix_search_access_open", "search_access", ["control", "open_date"])
    if op.get_bind().dialect.name == "sqlite":
        # the public (de-identified) text of each search document, same rowid as search_docs
        op.execute("CREATE VIRTUAL TABLE search_fts_public USING fts5("
                   "grams, words, tokenize = 'unicode61 remove_diacritics 0')")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS search_fts_public")
    for table in ("search_access", "label_tokens", "box_members", "boxes", "open_decisions",
                  "access_requests", "login_attempts", "users"):
        op.drop_table(table)
