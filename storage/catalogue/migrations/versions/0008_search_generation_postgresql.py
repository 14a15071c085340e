"""search_generation on PostgreSQL too: a deletion from search_docs bumps the counter

Revision ID: 0008
Revises: 0007
"""
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite has had it since 0006 (the in-memory search columns reload on it); the portal's
    # result cache keys on it in both, so that a record another process deletes leaves the
    # answers at once
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE TABLE IF NOT EXISTS search_generation (id INTEGER NOT NULL, "
               "deletions INTEGER NOT NULL, PRIMARY KEY (id))")
    op.execute("INSERT INTO search_generation (id, deletions) VALUES (1, 0) "
               "ON CONFLICT (id) DO NOTHING")
    op.execute("CREATE OR REPLACE FUNCTION search_docs_deleted() RETURNS trigger "
               "LANGUAGE plpgsql AS $$ BEGIN "
               "UPDATE search_generation SET deletions = deletions + 1 WHERE id = 1; "
               "RETURN NULL; END $$")
    op.execute("CREATE TRIGGER search_docs_deleted AFTER DELETE ON search_docs "
               "FOR EACH STATEMENT EXECUTE FUNCTION search_docs_deleted()")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS search_docs_deleted ON search_docs")
    op.execute("DROP FUNCTION IF EXISTS search_docs_deleted()")
    op.execute("DROP TABLE IF EXISTS search_generation")
