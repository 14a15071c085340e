"""The embedded search engine: SQLite FTS5 over the catalogue's search tables.

Every word of the query must match (AND); a word is a phrase of bigrams in the ``grams``
column or a dictionary word in the ``words`` column; hits are ranked by BM25 with whole-word
matches weighted above character matches. Facet filters and counts are computed over the
matching documents in SQL. Snippets are cut from the stored text and the query words marked.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from typing import TYPE_CHECKING, Any

from access.rules import mask_numbers
from metadata_profiles.idnumbers import MAX_SPAN
from access.search.base import CACHE_MIB, Hit, SearchEngine, SearchResult
from access.search.facets import day_key, facet_list
from access.search.query import FACET_FIELDS, Query
from storage.catalogue import reading

if TYPE_CHECKING:
    from storage.catalogue import Catalogue
    from access.search.columns import ColumnIndex
from storage.index import normalise, term_tokens

SNIPPET_CHARS = 80


def _date_key(row: dict[str, Any]) -> tuple[int, int]:
    return (-day_key(_json(row["facets"]) or {}), row["id"])


_ORDER = {
    "relevance": lambda r: (r["score"], r["id"]),
    "code": lambda r: (r["archival_code"] or "\uffff", r["id"]),
    "date": _date_key,
}


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _fts_phrase(tokens: list[str]) -> str:
    return '"' + " ".join(t.replace('"', '""') for t in tokens) + '"'


def fts_expression(terms: list[str], excluded: list[str]) -> str | None:
    """Translate query words into an FTS5 MATCH expression (None when there are none)."""
    clauses = []
    for term in terms:
        phrases = [p for p in term_tokens(term) if p]
        if not phrases:
            continue
        grams = " AND ".join(f"grams:{_fts_phrase(p)}" for p in phrases)
        word = normalise(term).replace("\x00", " ").strip()   # SQLite ends a string at NUL
        clauses.append(f"(({grams}) OR words:{_fts_phrase([word])})" if " " not in word
                       and word else f"({grams})")
    if not clauses:
        return None
    expression = " AND ".join(clauses)
    for term in excluded:
        for phrase in term_tokens(term):
            expression += f" NOT grams:{_fts_phrase(phrase)}"
    return expression


def highlight(content: str, terms: list[str], width: int = SNIPPET_CHARS) -> str:
    """An HTML snippet of ``content`` around the first match, every match in <mark>."""
    needles = sorted({t for t in terms if t.strip()}, key=len, reverse=True)
    if not needles:
        return html.escape(content[:width])
    pattern = re.compile("|".join(re.escape(n) for n in needles), re.IGNORECASE)
    first = pattern.search(content)
    start = max(0, (first.start() if first else 0) - width // 3)
    return _marked(content, content[start:start + width], start, width, pattern)


# how far beyond a snippet its text is masked: more than twice the longest masked number
# (MAX_SPAN characters: 18 digits with a separator between each), so that every number
# reaching into the snippet is masked whole, and no number cut at the margin's edge can be
# mistaken for one that reaches it
MASK_MARGIN = 2 * MAX_SPAN + 4


def masked_snippet(content: str, terms: list[str], width: int = SNIPPET_CHARS) -> str:
    """``highlight(mask_numbers(content), terms)``, masking only around the snippet.

    A document's text may run to megabytes; masking all of it for twenty hits costs more than
    the search. A word without digits or ``*`` matches the masked text exactly where it
    matches the text (masking turns digits into ``*`` and nothing else), so the snippet is
    placed on the text and only its neighbourhood is masked; a word with digits takes the
    whole text masked.
    """
    needles = sorted({t for t in terms if t.strip()}, key=len, reverse=True)
    if any(c.isdigit() or c == "*" for n in needles for c in n) or len(content) <= 4 * width:
        return highlight(mask_numbers(content), terms, width)
    start = 0
    pattern = None
    if needles:
        pattern = re.compile("|".join(re.escape(n) for n in needles), re.IGNORECASE)
        first = pattern.search(content)
        start = max(0, (first.start() if first else 0) - width // 3)
    low = max(0, start - MASK_MARGIN)
    masked = mask_numbers(content[low:start + width + MASK_MARGIN])
    piece = masked[start - low:start - low + width]
    if pattern is None:
        return html.escape(piece)
    return _marked(content, piece, start, width, pattern)


def _marked(content: str, piece: str, start: int, width: int, pattern: re.Pattern) -> str:
    """``piece`` (``content[start:start + width]``, masked) as HTML, matches in <mark>."""
    out, last = [], 0
    for match in pattern.finditer(piece):
        out.append(html.escape(piece[last:match.start()]))
        out.append(f"<mark>{html.escape(match.group())}</mark>")
        last = match.end()
    out.append(html.escape(piece[last:]))
    prefix = "…" if start > 0 else ""
    suffix = "…" if start + width < len(content) else ""
    return prefix + "".join(out).replace("\n", " ") + suffix


class EmbeddedSearch(SearchEngine):
    """Search over the catalogue's token tables: SQLite FTS5, or PostgreSQL ``tsvector``
    phrases (:mod:`access.search.pg_embedded`) when the catalogue is there."""

    def __init__(self, catalogue: Catalogue, columnar: bool = True,
                 cache_mib: int = CACHE_MIB) -> None:
        """``columnar``: on SQLite, search through the in-memory columns and postings
        (:mod:`.columns`); without it, row by row in SQL (the PostgreSQL path).
        ``cache_mib``: postings and scores the columns keep, per part (``[search]
        term_cache_mib``)."""
        self.catalogue = catalogue
        self.columnar = columnar
        self.cache_mib = cache_mib
        self._columns: ColumnIndex | None = None

    def search(self, query: Query, *, page: int = 1, per_page: int = 20,
               sort: str = "relevance", facet_limit: int = 20) -> SearchResult:
        """Run a query; ``sort`` is relevance, code (档号) or date.

        With ``query.scope`` (see :class:`access.rules.Scope`) a document the reader may not
        see in full matches only on its public text and is counted under its public facets;
        documents outside the scope are neither returned nor counted.
        """
        expression = fts_expression(query.terms, query.excluded)
        if self.columnar and self.catalogue.is_sqlite and self._columnar_ready():
            return self._columnar(query, expression, page, per_page, sort, facet_limit)
        with self.catalogue.engine.connect() as connection:
            return self.search_on(connection, query, page=page, per_page=per_page, sort=sort,
                                  facet_limit=facet_limit)

    def search_on(self, connection: Any, query: Query, *, page: int = 1, per_page: int = 20,
                  sort: str = "relevance", facet_limit: int = 20) -> SearchResult:
        """:meth:`search` in SQL, row by row, on an open catalogue connection (SQLAlchemy's,
        or a :class:`storage.catalogue.reading.Rows`)."""
        expression = fts_expression(query.terms, query.excluded)
        scope = query.scope
        if scope is None or scope.everything:
            rows = [dict(r, view="content") for r in
                    self._rows(connection, "search_fts", expression, query, "d.facets")]
        else:
            rows = self._scoped_rows(connection, expression, query, scope)
        rows.sort(key=_ORDER.get(sort, _ORDER["relevance"]))
        facets = self._facet_counts(rows, facet_limit)
        start = (max(page, 1) - 1) * per_page
        page_rows = rows[start:start + per_page]
        texts = self._texts(connection, [r["id"] for r in page_rows if r["view"] == "content"])
        hits = [Hit(r["aip_uuid"], r["item_key"], r["archival_code"], r["title"],
                    masked_snippet(r["title"] + "\n"
                                   + texts.get(r["id"], r.get("text", "")), query.terms),
                    _json(r["facets"]), float(r["score"]), r["view"]) for r in page_rows]
        return SearchResult(len(rows), hits, facets)

    def drop_caches(self) -> None:
        """Forget what searches have kept in memory (term postings and scores) as an index
        change does; the columns stay. Benchmarks use it to measure first searches."""
        if self._columns is not None:
            self._columns.drop_caches()

    def _columnar_ready(self) -> bool:
        if self._columns is None:
            from access.search.columns import ColumnIndex  # numpy: only where columns serve

            with self.catalogue.engine.connect() as connection:
                if not ColumnIndex.available(connection):
                    return False
            self._columns = ColumnIndex(self.catalogue, self.cache_mib)
        return True

    def _columnar(self, query: Query, expression: str | None, page: int, per_page: int,
                  sort: str, facet_limit: int) -> SearchResult:
        """Search on SQLite through the in-memory columns and postings (:mod:`.columns`)."""
        with self.catalogue.engine.connect() as connection:
            found = self._columns.search(connection, expression, query, page=page,
                                         per_page=per_page, sort=sort, facet_limit=facet_limit)
            ids = [doc_id for doc_id, _, _ in found.rows]
            rows = self._page_rows(connection, ids)
            shown = [doc_id for doc_id, _, view in found.rows if view == "content"]
            texts = self._texts(connection, shown)
            public = self._public_rows(connection, [doc_id for doc_id, _, view in found.rows
                                                    if view != "content"])
        scope = query.scope
        hits, restricted = [], set()
        for doc_id, score, view in found.rows:
            row = rows.get(doc_id)
            if row is None:
                continue
            if view != "content":
                if doc_id not in public:   # its access row was withdrawn meanwhile
                    continue
                title, body, facets = public[doc_id]
            else:
                title, body, facets = row["title"], texts.get(doc_id, ""), row["facets"]
                if scope is not None and not scope._open(row):   # no access row: not open
                    restricted.add((row["aip_uuid"], row["item_key"]))
            hits.append(Hit(row["aip_uuid"], row["item_key"], row["archival_code"], title,
                            masked_snippet(title + "\n" + body, query.terms),
                            _json(facets), score, view))
        return SearchResult(found.total, hits, found.facets,
                            frozenset(restricted) if scope is not None else None)

    @staticmethod
    def _page_rows(connection, ids: list[int]) -> dict[int, dict[str, Any]]:
        if not ids:
            return {}
        marks = ", ".join(str(int(i)) for i in ids)
        result = reading.execute(connection, (
            "SELECT d.id, d.aip_uuid, d.item_key, d.archival_code, d.title, d.facets, "
            "a.control, a.open_date FROM search_docs d "
            f"LEFT JOIN search_access a ON a.doc_id = d.id WHERE d.id IN ({marks})"))
        return {row["id"]: dict(row) for row in result.mappings()}

    @staticmethod
    def _public_rows(connection, ids: list[int]) -> dict[int, tuple[str, str, Any]]:
        if not ids:
            return {}
        marks = ", ".join(str(int(i)) for i in ids)
        result = reading.execute(connection, (
            "SELECT doc_id, public_title, public_text, public_facets FROM search_access "
            f"WHERE doc_id IN ({marks})"))
        return {r[0]: (r[1], r[2], r[3]) for r in result}

    @staticmethod
    def _rows(connection, fts: str, expression: str | None, query: Query, facets: str,
              extra: str = "", joins: str = "", where: tuple[str, dict[str, Any]] | None = None
              ) -> list[dict[str, Any]]:
        """Matching documents (no text): id, aip, item, code, title, facets, score."""
        if reading.dialect(connection) != "sqlite":
            from access.search.pg_embedded import pg_rows  # PostgreSQL catalogues only

            return pg_rows(connection, fts, query, facets, extra, joins)
        params: dict[str, Any] = dict(where[1]) if where else {}
        columns = ("d.id, d.aip_uuid, d.item_key, d.archival_code, d.title, "
                   f"{facets} AS facets{extra}")
        if expression:
            sql = (f"SELECT {columns}, bm25({fts}, 1.0, 3.0) AS score FROM {fts} "
                   # CROSS JOIN keeps SQLite's plan FTS-first (else it may scan the
                   # access table and run MATCH per row)
                   f"CROSS JOIN search_docs d ON d.id = {fts}.rowid {joins} "
                   f"WHERE {fts} MATCH :expr")
            params["expr"] = expression
        else:
            sql = f"SELECT {columns}, 0.0 AS score FROM search_docs d {joins} WHERE 1=1"
        for index, (name, values) in enumerate(sorted(query.filters.items())):
            if name not in FACET_FIELDS:
                continue
            keys = []
            for j, value in enumerate(values):
                key = f"f{index}_{j}"
                params[key] = value
                keys.append(f":{key}")
            # json_each walks a list, or yields the single value of a scalar
            sql += (f" AND EXISTS (SELECT 1 FROM json_each({facets}, '$.{name}') je "
                    f"WHERE CAST(je.value AS TEXT) IN ({', '.join(keys)}))")
        if where:
            sql += f" AND {where[0]}"
        result = reading.execute(connection, (sql), params)
        keys = list(result.keys())
        return [dict(zip(keys, row)) for row in result.fetchall()]

    def _scoped_rows(self, connection, expression: str | None, query: Query,
                     scope: Any) -> list[dict[str, Any]]:
        """Documents a scoped reader may find: full-text matches of what they may see in
        full, public-text matches (de-identified) of what they may only see listed."""
        access = (", a.open_date, a.control, a.pii_level, a.public_title, a.public_text")
        # CROSS JOIN keeps SQLite's plan FTS-first; PostgreSQL's CROSS JOIN takes no ON
        joins = (f"{'CROSS JOIN' if reading.dialect(connection) == 'sqlite' else 'JOIN'} "
                 "search_access a ON a.doc_id = d.id")
        found: dict[int, dict[str, Any]] = {}
        sql = getattr(scope, "sql", None)
        for row in self._rows(connection, "search_fts", expression, query, "d.facets",
                              access, joins, sql("content") if sql else None):
            if scope.content_visible(row):
                found[row["id"]] = dict(row, view="content")
        for row in self._rows(connection, "search_fts_public", expression, query,
                              "a.public_facets", access, joins, sql("listed") if sql else None):
            if row["id"] in found or not scope.listed_visible(row):
                continue
            view = "masked" if scope.see_open and scope._open(row) else "listed"
            found[row["id"]] = dict(row, view=view, title=row["public_title"],
                                    text=row["public_text"])
        return list(found.values())

    @staticmethod
    def _texts(connection, ids: list[int]) -> dict[int, str]:
        if not ids:
            return {}
        marks = ", ".join(f":i{n}" for n in range(len(ids)))
        result = reading.execute(connection, (f"SELECT id, text FROM search_docs WHERE id IN ({marks})"),
                                    {f"i{n}": i for n, i in enumerate(ids)})
        return {row[0]: row[1] for row in result}

    @staticmethod
    def _facet_counts(rows, limit: int) -> dict[str, list[tuple[str, int]]]:
        counts: dict[str, Counter] = {name: Counter() for name in FACET_FIELDS}
        for row in rows:
            for name, value in (_json(row["facets"]) or {}).items():
                if name in counts:
                    for v in value if isinstance(value, list) else [value]:
                        counts[name][str(v)] += 1
        return {n: facet_list(c, limit) for n, c in counts.items() if c}
