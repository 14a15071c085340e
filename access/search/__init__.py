"""Search: one query language, engines behind one interface (embedded SQLite FTS5 now)."""

from access.search.embedded import EmbeddedSearch, Hit, SearchResult, highlight
from access.search.query import FACET_FIELDS, Query, parse_query

__all__ = ["EmbeddedSearch", "FACET_FIELDS", "Hit", "Query", "SearchResult", "highlight",
           "parse_query"]
