"""indexing outbox and jobs

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
ACTIVE_JOB = "status IN ('queued', 'running')"
LIVE_TRANSFER = "status IN ('in-progress', 'accepted')"


def upgrade() -> None:
    op.create_table(
        "index_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("aip_uuid", sa.String(36), nullable=False),
        sa.Column("op", sa.String(8), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TZ, nullable=False),
        sa.Column("last_attempt_at", TZ, nullable=True),
        sa.Column("done_at", TZ, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_index_outbox_due", "index_outbox", ["status", "next_attempt_at"])
    op.create_index("ix_index_outbox_aip_uuid", "index_outbox", ["aip_uuid"])
    op.create_index("ix_index_outbox_created_at", "index_outbox", ["created_at"])
    op.create_table(
        "index_state",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("dedupe_key", sa.String(512), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("run_after", TZ, nullable=False),
        sa.Column("started_at", TZ, nullable=True),
        sa.Column("finished_at", TZ, nullable=True),
        sa.Column("worker", sa.String(255), nullable=True),
        sa.Column("lease_until", TZ, nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("history", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_jobs_due", "jobs", ["status", "run_after"])
    # one active job per key (e.g. one ingest of a given transfer path at a time)
    op.create_index("ux_jobs_active_key", "jobs", ["dedupe_key"], unique=True,
                    sqlite_where=sa.text(ACTIVE_JOB), postgresql_where=sa.text(ACTIVE_JOB))
    # a transfer's content is accepted once: the last line of defence behind the ingest locks
    op.create_index("ux_transfers_live_fingerprint", "transfers", ["fingerprint"], unique=True,
                    sqlite_where=sa.text(LIVE_TRANSFER), postgresql_where=sa.text(LIVE_TRANSFER))
    if op.get_bind().dialect.name == "sqlite":
        # the embedded engine keeps facet columns in memory (access/search/columns.py): a
        # deleted search document bumps this counter so that every process reloads them
        op.create_table("search_generation",
                        sa.Column("id", sa.Integer(), nullable=False),
                        sa.Column("deletions", sa.Integer(), nullable=False),
                        sa.PrimaryKeyConstraint("id"))
        op.execute("INSERT INTO search_generation (id, deletions) VALUES (1, 0)")
        op.execute("CREATE TRIGGER search_docs_deleted AFTER DELETE ON search_docs BEGIN "
                   "UPDATE search_generation SET deletions = deletions + 1 WHERE id = 1; END")
    if op.get_bind().dialect.name == "postgresql":
        # the embedded engine's token table on PostgreSQL (SQLite uses the FTS5 table
        # search_fts): bigram and word tokens of each search document as tsvectors, in chunks
        # so that no document exceeds tsvector's 16,383 positions
        op.create_table(
            "search_tokens",
            sa.Column("doc_id", sa.Integer(), nullable=False),
            sa.Column("part", sa.String(8), nullable=False),
            sa.Column("chunk", sa.Integer(), nullable=False),
            sa.Column("grams", postgresql.TSVECTOR(), nullable=False),
            sa.Column("words", postgresql.TSVECTOR(), nullable=False),
            sa.PrimaryKeyConstraint("doc_id", "part", "chunk"),
        )
        op.execute("CREATE INDEX ix_search_tokens_grams ON search_tokens USING gin (grams)")
        op.execute("CREATE INDEX ix_search_tokens_words ON search_tokens USING gin (words)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_table("search_tokens")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS search_docs_deleted")
        op.drop_table("search_generation")
    op.drop_index("ux_transfers_live_fingerprint", table_name="transfers")
    op.drop_index("ux_jobs_active_key", table_name="jobs")
    op.drop_index("ix_jobs_due", table_name="jobs")
    op.drop_table("jobs")
    op.drop_table("index_state")
    op.drop_index("ix_index_outbox_created_at", table_name="index_outbox")
    op.drop_index("ix_index_outbox_aip_uuid", table_name="index_outbox")
    op.drop_index("ix_index_outbox_due", table_name="index_outbox")
    op.drop_table("index_outbox")
