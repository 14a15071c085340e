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
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from access.search.query import FACET_FIELDS, Query
from storage.catalogue import Catalogue
from storage.textseg import normalise, term_tokens

SNIPPET_CHARS = 80


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


@dataclass
class SearchResult:
    """A page of hits, the total and the facet counts over all matching documents."""

    total: int
    hits: list[Hit]
    facets: dict[str, list[tuple[str, int]]] = field(default_factory=dict)


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
        word = normalise(term).strip()
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
    piece = content[start:start + width]
    out, last = [], 0
    for match in pattern.finditer(piece):
        out.append(html.escape(piece[last:match.start()]))
        out.append(f"<mark>{html.escape(match.group())}</mark>")
        last = match.end()
    out.append(html.escape(piece[last:]))
    prefix = "…" if start > 0 else ""
    suffix = "…" if start + width < len(content) else ""
    return prefix + "".join(out).replace("\n", " ") + suffix


class EmbeddedSearch:
    """Search over the catalogue's FTS5 index (SQLite only)."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue

    def search(self, query: Query, *, page: int = 1, per_page: int = 20,
               sort: str = "relevance", facet_limit: int = 20) -> SearchResult:
        """Run a query; ``sort`` is relevance, code (档号) or date."""
        expression = fts_expression(query.terms, query.excluded)
        params: dict[str, Any] = {}
        where = []
        if expression:
            base = ("SELECT d.id, d.aip_uuid, d.item_key, d.archival_code, d.title, d.text, "
                    "d.facets, bm25(search_fts, 1.0, 3.0) AS score "
                    "FROM search_fts JOIN search_docs d ON d.id = search_fts.rowid "
                    "WHERE search_fts MATCH :expr")
            params["expr"] = expression
        else:
            base = ("SELECT d.id, d.aip_uuid, d.item_key, d.archival_code, d.title, d.text, "
                    "d.facets, 0.0 AS score FROM search_docs d WHERE 1=1")
        for index, (name, values) in enumerate(sorted(query.filters.items())):
            if name not in FACET_FIELDS:
                continue
            keys = []
            for j, value in enumerate(values):
                key = f"f{index}_{j}"
                params[key] = value
                keys.append(f":{key}")
            # json_each walks a list, or yields the single value of a scalar
            where.append(f"EXISTS (SELECT 1 FROM json_each(d.facets, '$.{name}') je "
                         f"WHERE CAST(je.value AS TEXT) IN ({', '.join(keys)}))")
        sql = base + "".join(f" AND ({w})" for w in where)
        order = {"code": "d.archival_code, d.id", "date": "json_extract(d.facets, '$.year') DESC, d.id",
                 }.get(sort, "score, d.id")
        with self.catalogue.engine.connect() as connection:
            rows = connection.execute(text(f"SELECT * FROM ({sql}) AS d ORDER BY {order}"),
                                      params).mappings().all()
        facets = self._facet_counts(rows, facet_limit)
        start = (max(page, 1) - 1) * per_page
        hits = [Hit(r["aip_uuid"], r["item_key"], r["archival_code"], r["title"],
                    highlight(f"{r['title']}\n{r['text']}", query.terms),
                    json.loads(r["facets"]) if isinstance(r["facets"], str) else r["facets"],
                    float(r["score"])) for r in rows[start:start + per_page]]
        return SearchResult(len(rows), hits, facets)

    @staticmethod
    def _facet_counts(rows, limit: int) -> dict[str, list[tuple[str, int]]]:
        counts: dict[str, Counter] = {name: Counter() for name in FACET_FIELDS}
        for row in rows:
            facets = json.loads(row["facets"]) if isinstance(row["facets"], str) else row["facets"]
            for name, value in (facets or {}).items():
                if name in counts:
                    for v in value if isinstance(value, list) else [value]:
                        counts[name][str(v)] += 1
        return {n: c.most_common(limit) for n, c in counts.items() if c}
