"""Term postings of the embedded search index on SQLite: which documents hold a token, and how
often, stored as compact arrays so that a query can rank a million documents without asking
FTS5 to score them one by one.

FTS5 (``search_fts``) stays the authority on *matching* (phrases, exclusions); these postings
give the statistics BM25 needs — per token the documents and term frequencies, per document
the number of tokens — in a form numpy reads in one go: a two-character word that half of a
million documents contain is one ``SELECT`` of a few blobs, not half a million calls of FTS5's
``bm25()``.

Layout (a small log-structured merge tree, one per *part*: ``content`` or ``public``):

* ``search_segments``: each write of a batch of documents adds a segment holding their ids and
  token counts (``grams`` and ``words`` lengths); a deleted document is written as a segment
  entry with length -1 (a tombstone). ``gen`` orders segments: a document's newest entry wins.
* ``search_postings``: per (part, token, segment) the document ids (uint32) and term
  frequencies (uint16) of that segment. Tokens are ``g:`` + a gram token or ``w:`` + a word.
* When the newest :data:`FANOUT` segments of a part share a level they are merged into one of
  the next level (superseded entries dropped), up to :data:`MAX_MERGE_DOCS` documents, so a
  token is spread over a few dozen rows for a million documents.
* ``search_postings_state.clears`` counts whole-part clears, so that readers know to reload.

Readers: :class:`access.search.columns.ColumnIndex`.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

FANOUT = 16
MAX_MERGE_DOCS = 200_000   # bigger segments stay as they are (merge memory stays bounded)
MAX_TF = 65_535


def _encode(values: Sequence[int] | np.ndarray, dtype: Any) -> bytes:
    if isinstance(values, np.ndarray) and values.dtype == dtype:
        return values.tobytes()
    return np.asarray(values, dtype=dtype).tobytes()


def has_postings(connection: Any) -> bool:
    """Whether this (SQLite) catalogue has the postings tables."""
    return bool(connection.execute(text(
        "SELECT count(*) FROM sqlite_master WHERE name = 'search_segments'")).scalar())


def write_segment(connection: Any, part: str, documents: Iterable[tuple[int, str, str]]) -> None:
    """Add one segment: ``(doc_id, grams, words)`` token strings as :func:`index_tokens` cuts
    them. A document written again supersedes its earlier entry."""
    documents = sorted(documents, key=lambda d: d[0])
    if not documents:
        return
    # every token occurrence as (token number, document index); then numpy counts them
    vocabulary: dict[str, int] = defaultdict(itertools.count().__next__)   # token -> number
    tokens: list[int] = []
    owners: list[int] = []
    lengths: list[int] = []
    counts: list[int] = []
    number = vocabulary.__getitem__
    for index, (_doc_id, grams, words) in enumerate(documents):
        gram_list = grams.split()
        word_list = ("w:" + words.replace(" ", " w:")).split() if words.strip() else []
        lengths += (len(gram_list), len(word_list))
        gram_list += word_list
        held = Counter(gram_list)
        tokens += map(number, held)
        counts += held.values()
        owners += [index] * len(held)
    ids = [doc_id for doc_id, _, _ in documents]
    _insert(connection, part, 0, None, ids, lengths,
            _postings(vocabulary, tokens, owners, counts, ids))
    _merge_newest(connection, part)


def _postings(vocabulary: dict[str, int], tokens: list[int], owners: list[int],
              counts: list[int], ids: list[int]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Per token: the documents holding it (ascending) and how often."""
    if not tokens:
        return []
    width = len(ids)
    keys = np.asarray(tokens, dtype=np.int64) * width + np.asarray(owners, dtype=np.int64)
    order = np.argsort(keys)
    keys = keys[order]
    token_of, doc_of = np.divmod(keys, width)
    doc_ids = np.asarray(ids, dtype=np.int64)[doc_of]
    frequencies = np.minimum(np.asarray(counts, dtype=np.int64)[order], MAX_TF)
    names = [""] * len(vocabulary)
    for name, at in vocabulary.items():
        names[at] = name if name.startswith("w:") else "g:" + name
    starts = np.flatnonzero(np.concatenate([[True], token_of[1:] != token_of[:-1]]))
    ends = np.append(starts[1:], len(keys))
    return [(names[int(token_of[a])], doc_ids[a:b], frequencies[a:b])
            for a, b in zip(starts.tolist(), ends.tolist())]


def delete_documents(connection: Any, part: str, doc_ids: Sequence[int]) -> None:
    """Tombstones for these documents (their postings are dropped at the next merge)."""
    if doc_ids:
        _insert(connection, part, 0, None, list(doc_ids), [-1, -1] * len(doc_ids), ())
        _merge_newest(connection, part)


def clear_part(connection: Any, part: str) -> None:
    """Drop every segment of a part (and tell readers to reload it)."""
    connection.execute(text("DELETE FROM search_postings WHERE part = :p"), {"p": part})
    connection.execute(text("DELETE FROM search_segments WHERE part = :p"), {"p": part})
    connection.execute(text(
        "INSERT INTO search_postings_state (part, clears) VALUES (:p, 1) "
        "ON CONFLICT (part) DO UPDATE SET clears = clears + 1"), {"p": part})


def _insert(connection: Any, part: str, level: int, gen: int | None, ids: Sequence[int],
            lengths: Sequence[int], postings: Iterable[tuple[str, Any, Any]]) -> int:
    segment = connection.execute(text(
        "INSERT INTO search_segments (part, gen, level, docs, lengths) "
        "VALUES (:p, 0, :l, :d, :n) RETURNING id"),
        {"p": part, "l": level, "d": _encode(ids, np.uint32),
         "n": _encode(lengths, np.int32)}).scalar_one()
    connection.execute(text("UPDATE search_segments SET gen = :g WHERE id = :id"),
                       {"g": segment if gen is None else gen, "id": segment})
    # in key order: the B-tree then grows at a few places instead of everywhere
    rows = sorted((part, term, segment, _encode(docs, np.uint32), _encode(tfs, np.uint16))
                  for term, docs, tfs in postings)
    if rows:   # straight to the driver: tens of thousands of rows per segment
        raw = connection.connection() if isinstance(connection, Session) else connection
        raw.exec_driver_sql("INSERT INTO search_postings (part, term, segment, docs, tfs) "
                            "VALUES (?, ?, ?, ?, ?)", rows)
    return segment


def _merge_newest(connection: Any, part: str) -> None:
    """While the newest FANOUT segments share a level, merge them into one a level up."""
    while True:
        newest = connection.execute(text(
            "SELECT id, gen, level, docs, lengths FROM search_segments WHERE part = :p "
            "ORDER BY gen DESC LIMIT :n"), {"p": part, "n": FANOUT}).all()
        if len(newest) < FANOUT or len({row.level for row in newest}) != 1:
            return
        if sum(len(row.docs) // 4 for row in newest) > MAX_MERGE_DOCS:
            return
        oldest = connection.execute(text(
            "SELECT min(gen) FROM search_segments WHERE part = :p"), {"p": part}).scalar()
        _merge(connection, part, list(reversed(newest)), everything=newest[-1].gen == oldest)


def _merge(connection: Any, part: str, segments: list[Any], everything: bool) -> None:
    """Merge segments (oldest first) into one; tombstones are kept unless nothing is older."""
    gens = {row.id: row.gen for row in segments}
    docs = np.concatenate([np.frombuffer(row.docs, dtype=np.uint32) for row in segments])
    lengths = np.concatenate([np.frombuffer(row.lengths, dtype=np.int32).reshape(-1, 2)
                              for row in segments])
    owner = np.concatenate([np.full(len(row.docs) // 4, row.gen, dtype=np.int64)
                            for row in segments])
    # the newest entry of each document within these segments
    order = np.lexsort((-owner, docs))
    first = np.ones(len(order), dtype=bool)
    first[1:] = docs[order][1:] != docs[order][:-1]
    keep = order[first]
    if everything:
        keep = keep[lengths[keep, 0] >= 0]
    kept_docs, kept_gens = docs[keep], owner[keep]
    live = kept_docs[lengths[keep, 0] >= 0]
    live_gens = kept_gens[lengths[keep, 0] >= 0]
    ids = ", ".join(str(int(row.id)) for row in segments)
    rows = connection.execute(text(
        f"SELECT term, segment, docs, tfs FROM search_postings WHERE part = :p "
        f"AND segment IN ({ids})"), {"p": part}).all()
    merged = _merged_postings(rows, gens, live, live_gens)
    connection.execute(text(f"DELETE FROM search_postings WHERE part = :p AND segment IN ({ids})"),
                       {"p": part})
    connection.execute(text(f"DELETE FROM search_segments WHERE id IN ({ids})"))
    _insert(connection, part, segments[-1].level + 1, int(max(gens.values())),
            kept_docs, lengths[keep].ravel(), merged)


def _merged_postings(rows: list[Any], gens: dict[int, int], live: np.ndarray,
                     live_gens: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Every token's postings over the merged segments, in one pass over all their entries:
    entries of each document's newest version only, tokens in order, documents ascending."""
    if not rows or not len(live):
        return []
    terms = sorted({row[0] for row in rows})
    number = {term: n for n, term in enumerate(terms)}
    sizes = np.asarray([len(row[2]) // 4 for row in rows], dtype=np.int64)
    docs = np.frombuffer(b"".join(row[2] for row in rows), dtype=np.uint32)
    tfs = np.frombuffer(b"".join(row[3] for row in rows), dtype=np.uint16)
    term_of = np.repeat(np.asarray([number[row[0]] for row in rows], dtype=np.int32), sizes)
    gen_of = np.repeat(np.asarray([gens[row[1]] for row in rows], dtype=np.int64), sizes)
    at = np.minimum(np.searchsorted(live, docs), len(live) - 1)
    valid = (live[at] == docs) & (live_gens[at] == gen_of)
    docs, tfs, term_of = docs[valid], tfs[valid], term_of[valid]
    order = np.lexsort((docs, term_of))
    docs, tfs, term_of = docs[order], tfs[order], term_of[order]
    starts = np.flatnonzero(np.concatenate([[True], term_of[1:] != term_of[:-1]]))
    ends = np.append(starts[1:], len(docs))
    return [(terms[int(term_of[a])], docs[a:b], tfs[a:b])
            for a, b in zip(starts.tolist(), ends.tolist())]


def backfill(connection: Any, batch: int = 2000) -> int:
    """Write the postings of every indexed document (a catalogue created before them).

    Returns:
        The number of documents written.
    """
    from storage.index.textseg import index_tokens

    count = 0
    for part, sql in (
        ("content", "SELECT id, archival_code, title, text FROM search_docs WHERE id > :last "
                    "ORDER BY id LIMIT :n"),
        ("public", "SELECT a.doc_id, d.archival_code, a.public_title, a.public_text "
                   "FROM search_access a JOIN search_docs d ON d.id = a.doc_id "
                   "WHERE a.doc_id > :last ORDER BY a.doc_id LIMIT :n"),
    ):
        last = 0
        while True:
            rows = connection.execute(text(sql), {"last": last, "n": batch}).all()
            if not rows:
                break
            write_segment(connection, part,
                          ((r[0], *index_tokens(f"{r[1] or ''} {r[2]}\n{r[3]}")) for r in rows))
            count, last = count + len(rows), rows[-1][0]
    return count
