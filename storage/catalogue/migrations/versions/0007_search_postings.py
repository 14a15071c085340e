"""term postings of the embedded search index (SQLite)

Revision ID: 0007
Revises: 0006
"""
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    # see storage/search_postings.py: segments of documents with their token counts, and per
    # token the documents and term frequencies of each segment, as packed arrays
    op.execute("CREATE TABLE search_segments (id INTEGER PRIMARY KEY AUTOINCREMENT, "
               "part TEXT NOT NULL, gen INTEGER NOT NULL, level INTEGER NOT NULL, "
               "docs BLOB NOT NULL, lengths BLOB NOT NULL)")
    op.execute("CREATE INDEX ix_search_segments_part_gen ON search_segments (part, gen)")
    op.execute("CREATE TABLE search_postings (part TEXT NOT NULL, term TEXT NOT NULL, "
               "segment INTEGER NOT NULL, docs BLOB NOT NULL, tfs BLOB NOT NULL, "
               "PRIMARY KEY (part, term, segment)) WITHOUT ROWID")
    op.execute("CREATE INDEX ix_search_postings_segment ON search_postings (segment)")
    op.execute("CREATE TABLE search_postings_state (part TEXT PRIMARY KEY, "
               "clears INTEGER NOT NULL)")
    tables = {r[0] for r in op.get_bind().exec_driver_sql(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "search_generation" not in tables:   # some catalogues at 0006 were made without it
        op.execute("CREATE TABLE search_generation (id INTEGER NOT NULL, "
                   "deletions INTEGER NOT NULL, PRIMARY KEY (id))")
        op.execute("INSERT INTO search_generation (id, deletions) VALUES (1, 0)")
        op.execute("CREATE TRIGGER search_docs_deleted AFTER DELETE ON search_docs BEGIN "
                   "UPDATE search_generation SET deletions = deletions + 1 WHERE id = 1; END")
    from storage.index import postings

    postings.backfill(op.get_bind())


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in ("search_postings_state", "search_postings", "search_segments"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
