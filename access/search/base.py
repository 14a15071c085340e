"""The interface every search engine implements, and the choice of engine by configuration.

Two engines answer the same :class:`~access.search.query.Query` with the same
:class:`SearchResult`: the embedded one (SQLite FTS5, or PostgreSQL ``tsvector`` when the
catalogue is there) and Elasticsearch (``[search] engine = "elasticsearch"``). Matching is the
same on both by construction — a query word is a phrase of CJK bigrams and lower-cased words cut
by :mod:`storage.index.textseg` — and so are filters, facet counts, sorting, snippets and the access
scope; relevance scores differ (BM25 over different token statistics), so hits sorted by
relevance may come in a different order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from access.search.query import Query
from policies import ConfigError, DanganError, Settings

if TYPE_CHECKING:
    from storage.catalogue import Catalogue

CACHE_MIB = 256
"""Postings and scores the embedded engine keeps, in MiB per part and process (``[search]
term_cache_mib``)."""

SORTS = ("relevance", "code", "date")


class SearchError(DanganError):
    """The search engine failed or could not be reached (the engine's error attached)."""


@dataclass
class Hit:
    """One search hit."""

    aip_uuid: str
    item_key: str | None
    archival_code: str | None
    title: str
    snippet: str              # HTML-safe, matches wrapped in <mark>
    facets: dict[str, Any]
    score: float
    view: str = "content"     # content | masked | listed: how much of the record the reader sees

    @property
    def text_pending(self) -> bool:
        """Whether OCR of the record's scans or images is still queued (its full text is not
        all searchable yet; see ingest.textjobs)."""
        return (self.facets or {}).get("fulltext") == "pending"


@dataclass
class SearchResult:
    """A page of hits, the total and the facet counts over all matching documents."""

    total: int
    hits: list[Hit]
    facets: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    #: (AIP, item) of the content hits that are restricted material (not open, or without an
    #: access row), when the engine read it with the page; None: not known (ask the catalogue)
    restricted: frozenset[tuple[str, str | None]] | None = field(default=None, repr=False)


class SearchEngine(ABC):
    """A search engine over the catalogue's search documents."""

    #: True when the engine keeps its own index, fed through the indexing outbox
    external: bool = False

    @abstractmethod
    def search(self, query: Query, *, page: int = 1, per_page: int = 20,
               sort: str = "relevance", facet_limit: int = 20) -> SearchResult:
        """Run a query; ``sort`` is ``relevance``, ``code`` (档号) or ``date`` (newest first)."""

    def index_aips(self, aip_uuids: Iterable[str]) -> dict[str, str]:
        """Bring these AIPs' documents into the engine; return AIP -> error for failures.

        The embedded engine's index is written with the catalogue, so there is nothing to do.
        """
        return {}

    def delete_aips(self, aip_uuids: Iterable[str]) -> dict[str, str]:
        """Remove these AIPs' documents from the engine; return AIP -> error for failures."""
        return {}

    def status(self) -> dict[str, Any]:
        """What the engine knows of its own index (for ``dangan index status``)."""
        return {"engine": "embedded"}


def open_engine(settings: Settings, catalogue: Catalogue | None = None, *,
                columnar: bool = True) -> SearchEngine:
    """The search engine the settings name (``[search] engine``).

    ``columnar``: the embedded engine keeps every document's columns in memory, for a process
    that answers many searches (the portal); a command that asks one question answers it in
    SQL instead (the same hits, facets and scores) and spares loading the columns.

    Raises:
        ConfigError: an unknown engine, or Elasticsearch without a URL.
    """
    from access.search.embedded import EmbeddedSearch
    from storage.catalogue import Catalogue

    catalogue = catalogue or Catalogue.open(settings)
    name = settings.get("search", "engine")
    if name == "embedded":
        return EmbeddedSearch(catalogue, columnar=columnar,
                              cache_mib=settings.int("search", "term_cache_mib"))
    if name == "elasticsearch":
        from access.search.elastic import ElasticSearch

        return ElasticSearch(settings, catalogue)
    raise ConfigError(f"[search] engine = {name!r}: expected \"embedded\" or \"elasticsearch\"")
