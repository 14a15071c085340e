"""What ingest writes for search inside the catalogue transaction.

- :mod:`~storage.index.textseg` — Chinese text cut into the tokens search matches (CJK bigrams,
  words, Latin runs);
- :mod:`~storage.index.tokens` — the embedded engine's token rows (SQLite FTS5 / PostgreSQL
  ``tsvector``);
- :mod:`~storage.index.postings` — term postings (packed arrays) for BM25 at a million items;
- :mod:`~storage.index.outbox` — the indexing outbox an external engine (Elasticsearch) drains."""

from __future__ import annotations

from typing import TYPE_CHECKING

from policies.lazy import lazy_exports

_API = {
    # textseg
    "index_tokens": "textseg",
    "normalise": "textseg",
    "term_tokens": "textseg",
    # tokens
    "delete_tokens": "tokens",
    "unindex_aip": "tokens",
    "rebuild_tokens": "tokens",
    "write_tokens_many": "tokens",
    # postings
    "postings": "postings",
    # outbox
    "OutboxEntry": "outbox",
    "outbox": "outbox",
}

__all__ = sorted(_API)
__getattr__, __dir__ = lazy_exports(__name__, _API)

if TYPE_CHECKING:  # what static tools see; nothing is imported at run time
    from storage.index.textseg import index_tokens, normalise, term_tokens
    from storage.index.tokens import delete_tokens, rebuild_tokens, unindex_aip, write_tokens_many
    from storage.index import postings
    from storage.index import outbox
    from storage.index.outbox import OutboxEntry
