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
    from storage.search_postings import backfill

    backfill(op.get_bind())


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in ("search_postings_state", "search_postings", "search_segments"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
