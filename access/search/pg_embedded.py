"""The embedded engine's matching on PostgreSQL: the same tokens, as ``tsvector`` phrases.

The catalogue on PostgreSQL keeps each document's bigram and word tokens in ``search_tokens``
(see :mod:`storage.index.tokens`), built with the ``simple`` text-search configuration, which
keeps every token as it is. A query word is then matched as on SQLite FTS5: each of its runs is
a phrase of consecutive tokens, ``'因病' <-> '病致' <-> '致贫'``; words are AND-ed, excluded words
are NOT-ed. Because long documents are stored in overlapping chunks, every phrase is tested on
its own (``EXISTS`` over the document's chunks), so two words of a query may match in different
chunks of the same document, as they would anywhere in one SQLite FTS5 row.

Ranking is ``ts_rank`` over the grams plus three times over the words (the FTS5 engine weighs
whole words three times too); scores are negated so that lower sorts first on both databases.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from access.search.query import FACET_FIELDS, Query
from storage.index import normalise, term_tokens

PARTS = {"search_fts": "content", "search_fts_public": "public"}


def tsquery_phrase(tokens: list[str]) -> str:
    """A ``to_tsquery`` phrase of tokens, each quoted.

    >>> tsquery_phrase(["因病", "病致"])
    "'因病' <-> '病致'"
    """
    return " <-> ".join("'" + t.replace("\\", "\\\\").replace("'", "''") + "'" for t in tokens)


def _phrases(terms: list[str]) -> list[str]:
    return [tsquery_phrase(p) for term in terms for p in term_tokens(term) if p]


def _facet_filter(facets: str, name: str, keys: list[str]) -> str:
    value = f"(({facets})::json -> '{name}')"
    return (f"EXISTS (SELECT 1 FROM json_array_elements_text(CASE WHEN json_typeof({value}) = "
            f"'array' THEN {value} ELSE json_build_array({value}) END) je(v) "
            f"WHERE je.v IN ({', '.join(keys)}))")


def pg_rows(connection: Any, fts: str, query: Query, facets: str, extra: str = "",
            joins: str = "") -> list[dict[str, Any]]:
    """Matching documents (no text): id, aip, item, code, title, facets, score.

    Arguments:
        fts: the SQLite token table the caller means (``search_fts`` for content,
            ``search_fts_public`` for the public view); it selects the ``search_tokens`` part.
        query: terms, exclusions and facet filters.
        facets: the SQL expression of the facets to filter on and return.
        extra, joins: more columns and joins (the access view).
    """
    params: dict[str, Any] = {"part": PARTS[fts]}
    columns = ("d.id, d.aip_uuid, d.item_key, d.archival_code, d.title, "
               f"{facets} AS facets{extra}")
    phrases = [p for term in query.terms for p in [_phrases([term])] if p]
    where = []
    if phrases:
        for n, phrase in enumerate(p for group in phrases for p in group):
            params[f"p{n}"] = phrase
            where.append(_chunk_exists(f"p{n}"))
        for n, phrase in enumerate(_phrases(query.excluded)):
            params[f"x{n}"] = phrase
            where.append("NOT " + _chunk_exists(f"x{n}"))
        params["all"] = " & ".join(f"({p})" for group in phrases for p in group)
        words = [normalise(t).replace("\x00", " ").strip() for t in query.terms]
        params["words"] = " | ".join(tsquery_phrase([w]) for w in words if w and " " not in w) \
            or params["all"]
        score = ("-(SELECT max(ts_rank(t.grams, to_tsquery('simple', :all)) + "
                 "3 * ts_rank(t.words, to_tsquery('simple', :words))) FROM search_tokens t "
                 "WHERE t.doc_id = d.id AND t.part = :part)")
    else:
        score = "0.0"
    for index, (name, values) in enumerate(sorted(query.filters.items())):
        if name not in FACET_FIELDS:
            continue
        keys = []
        for j, value in enumerate(values):
            params[f"f{index}_{j}"] = str(value)
            keys.append(f":f{index}_{j}")
        where.append(_facet_filter(facets, name, keys))
    sql = (f"SELECT {columns}, {score} AS score FROM search_docs d {joins} "
           f"WHERE {' AND '.join(where) or 'TRUE'}")
    return [dict(r) for r in connection.execute(text(sql), params).mappings()]


def _chunk_exists(param: str) -> str:
    return ("EXISTS (SELECT 1 FROM search_tokens t WHERE t.doc_id = d.id AND t.part = :part "
            f"AND t.grams @@ to_tsquery('simple', :{param}))")
