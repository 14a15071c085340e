"""The embedded engine's search over SQLite, computed in memory with numpy.

With a million documents a two-character word matches a hundred thousand of them or more;
reading their rows back to count facets, apply the reader's access scope and rank them costs
seconds, and FTS5's ``bm25()`` alone costs about a microsecond a match. Instead each process
keeps:

* per search document, compact columns: one per facet field (value codes in numpy arrays,
  lists as offsets + values), the sort keys, and — for scoped readers — the access view
  (control flag, open date, PII level, public facets) from ``search_access``;
* per part (``content``, ``public``), the document statistics of the term postings
  (:mod:`storage.search_postings`): newest entry and token counts of every document.

A query then reads the postings of its tokens (a few blobs), matches and scores documents with
BM25 in numpy (k1 = 1.2, b = 0.75, words weighted 3 to grams' 1, as the FTS5 path), applies the
scope and the facet filters as vector masks, counts facets with ``bincount``, takes the page by
``argpartition`` and reads back only the page's rows. A query word of more than two characters
is a phrase of bigrams: the postings give its candidates and an upper bound of its frequency
(the least frequent bigram's), and FTS5 confirms which candidates hold the phrase.

What a reader finds is exactly what the row-by-row path finds (the parity and access tests run
both): the same totals, facet counts (ties by value), views, and order for 档号 and date
(ties by document id); relevance ties are broken by document id.
New documents are seen at once (the newest id and segment are checked on every search); a
deletion from ``search_docs`` (the ``search_generation`` counter) reloads the columns.
"""

from __future__ import annotations

import json
import math
import threading
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import text

from access.search.query import FACET_FIELDS, Query
from storage.textseg import normalise, term_tokens

LOAD_BATCH = 50_000
NO_CODE = "\uffff"
K1, B = 1.2, 0.75
WEIGHTS = {"g:": 1.0, "w:": 3.0}
TERM_CACHE = 256
ID_BATCH = 900


@dataclass
class _Column:
    """One facet field: value strings, their codes, and per entry the codes it holds."""

    values: list[str] = field(default_factory=list)
    codes: dict[str, int] = field(default_factory=dict)
    offsets: array = field(default_factory=lambda: array("q", [0]))
    members: array = field(default_factory=lambda: array("i"))
    first: array = field(default_factory=lambda: array("i"))   # the one code, or -1
    single: bool = True                                           # no entry holds two

    def add(self, value: Any) -> None:
        """Append one entry holding ``value`` (a scalar, a list, or None for nothing)."""
        held = [] if value is None else value if isinstance(value, list) else [value]
        for v in held:
            key = str(v)
            code = self.codes.get(key)
            if code is None:
                code = self.codes[key] = len(self.values)
                self.values.append(key)
            self.members.append(code)
        self.offsets.append(len(self.members))
        self.first.append(self.members[-1] if held else -1)
        self.single = self.single and len(held) <= 1


class _Facets:
    """The facet columns of a set of entries, and per document its entry (or -1)."""

    def __init__(self) -> None:
        self.columns = {name: _Column() for name in FACET_FIELDS}
        self.years = array("i")
        self.entries = 0

    def add(self, facets: dict[str, Any]) -> int:
        for name, column in self.columns.items():
            column.add(facets.get(name))
        year = str(facets.get("year") or "")
        self.years.append(int(year) if year.isdigit() else 0)
        self.entries += 1
        return self.entries - 1

    def segments(self, name: str, entries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The value codes held by these entries, and for each the index of its holder."""
        column = self.columns[name]
        if column.single:
            codes = np.frombuffer(column.first, dtype=np.int32)[entries]
            held = np.nonzero(codes >= 0)[0]
            return codes[held], held
        offsets = np.frombuffer(column.offsets, dtype=np.int64)
        members = np.frombuffer(column.members, dtype=np.int32)
        starts, ends = offsets[entries], offsets[entries + 1]
        lengths = ends - starts
        total = int(lengths.sum())
        if total == 0:
            return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int64)
        begins = np.cumsum(lengths) - lengths
        index = np.arange(total, dtype=np.int64) + np.repeat(starts - begins, lengths)
        owner = np.repeat(np.arange(len(entries), dtype=np.int64), lengths)
        return members[index], owner

    def having(self, name: str, entries: np.ndarray, wanted: Sequence[str]) -> np.ndarray:
        """Indexes (into ``entries``) of those holding one of the wanted values."""
        column = self.columns[name]
        codes = [column.codes[v] for v in wanted if v in column.codes]
        if not codes:
            return np.zeros(0, dtype=np.int64)
        held, owner = self.segments(name, entries)
        return np.unique(owner[np.isin(held, codes)])

    def counts(self, name: str, entries: np.ndarray) -> dict[str, int]:
        held, _owner = self.segments(name, entries)
        if not len(held):
            return {}
        column = self.columns[name]
        counts = np.bincount(held, minlength=len(column.values))
        return {column.values[c]: int(counts[c]) for c in np.nonzero(counts)[0]}


@dataclass
class Page:
    """What the in-memory search found: total, facet counts and the page's hits in order
    as (document id, score, view) — view ``content``, ``masked`` or ``listed``."""

    total: int
    facets: dict[str, list[tuple[str, int]]]
    rows: list[tuple[int, float, str]]


class _Part:
    """The postings statistics of one part (``content`` or ``public``) of the index."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.reset()

    def reset(self) -> None:
        self.latest = np.zeros(0, dtype=np.int64)      # doc id -> gen of its newest entry
        self.lengths = np.zeros((0, 2), dtype=np.int32)  # doc id -> grams, words (-1 deleted)
        self.gens: dict[int, int] = {}                   # segment id -> gen
        self.last_segment = 0
        self.clears = -1
        self.max_gen = 0
        self.terms: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._stats: tuple[int, float, float] | None = None

    def refresh(self, connection: Any) -> tuple[bool, np.ndarray]:
        """Catch up with the segments table.

        Returns:
            (reset, changed): whether the part was cleared (every document changed), and the
            ids of documents whose entry changed since the last call.
        """
        clears = connection.execute(text("SELECT clears FROM search_postings_state "
                                         "WHERE part = :p"), {"p": self.name}).scalar() or 0
        count, newest = connection.execute(text(
            "SELECT count(*), coalesce(max(id), 0) FROM search_segments WHERE part = :p"),
            {"p": self.name}).one()
        unchanged = np.zeros(0, dtype=np.int64)
        if clears == self.clears and newest == self.last_segment and count == len(self.gens):
            return False, unchanged
        cleared = clears != self.clears
        before = self.max_gen
        added = connection.execute(text(
            "SELECT id FROM search_segments WHERE part = :p AND id > :last"),
            {"p": self.name, "last": self.last_segment}).scalars().all()
        if cleared or count != len(self.gens) + len(added):   # cleared, or segments merged
            self.reset()
            self.clears = clears
            since = 0
        else:
            since = self.last_segment
        self.terms.clear()
        self._stats = None
        rows = connection.execute(text(
            "SELECT id, gen, docs, lengths FROM search_segments WHERE part = :p AND id > :last "
            "ORDER BY gen"), {"p": self.name, "last": since}).all()
        for segment, gen, docs, lengths in rows:
            self._apply(segment, gen, np.frombuffer(docs, dtype=np.uint32).astype(np.int64),
                        np.frombuffer(lengths, dtype=np.int32).reshape(-1, 2))
        if cleared:
            return True, unchanged
        return False, np.flatnonzero(self.latest > before)

    def _apply(self, segment: int, gen: int, docs: np.ndarray, lengths: np.ndarray) -> None:
        self.gens[segment] = gen
        self.last_segment = max(self.last_segment, segment)
        self.max_gen = max(self.max_gen, gen)
        if not len(docs):
            return
        size = int(docs.max()) + 1
        if size > len(self.latest):
            grow = max(size, len(self.latest) * 5 // 4)
            self.latest = np.concatenate([self.latest, np.zeros(grow - len(self.latest),
                                                                dtype=np.int64)])
            self.lengths = np.concatenate([self.lengths, np.full((grow - len(self.lengths), 2),
                                                                 -1, dtype=np.int32)])
        newer = self.latest[docs] <= gen
        self.latest[docs[newer]] = gen
        self.lengths[docs[newer]] = lengths[newer]

    def stats(self) -> tuple[int, float]:
        """Live documents and their mean length in tokens, both columns (BM25's N, avgdl)."""
        if self._stats is None:
            live = self.lengths[(self.latest > 0) & (self.lengths[:, 0] >= 0)]
            n = len(live)
            self._stats = (n, float(live.sum(axis=1).mean()) if n else 1.0)
        return self._stats

    def postings(self, connection: Any, term: str) -> tuple[np.ndarray, np.ndarray]:
        """(doc ids, term frequencies) of a token's live entries, by doc id."""
        found = self.terms.get(term)
        if found is not None:
            self.terms.move_to_end(term)
            return found
        pieces = connection.execute(text(
            "SELECT segment, docs, tfs FROM search_postings WHERE part = :p AND term = :t"),
            {"p": self.name, "t": term}).all()
        if pieces:
            docs = np.concatenate([np.frombuffer(d, dtype=np.uint32) for _, d, _ in pieces]
                                  ).astype(np.int64)
            tfs = np.concatenate([np.frombuffer(f, dtype=np.uint16) for _, _, f in pieces])
            gens = np.concatenate([np.full(len(d) // 4, self.gens.get(s, -1), dtype=np.int64)
                                   for s, d, _ in pieces])
            inside = docs < len(self.latest)
            docs, tfs, gens = docs[inside], tfs[inside], gens[inside]
            valid = (self.latest[docs] == gens) & (self.lengths[docs, 0] >= 0)
            docs, tfs = docs[valid], tfs[valid].astype(np.float64)
            if len(pieces) > 1:
                order = np.argsort(docs, kind="stable")
                docs, tfs = docs[order], tfs[order]
        else:
            docs, tfs = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        self.terms[term] = (docs, tfs)
        if len(self.terms) > TERM_CACHE:
            self.terms.popitem(last=False)
        return docs, tfs

    def bm25(self, prefix: str, docs: np.ndarray, tfs: np.ndarray, df: int) -> np.ndarray:
        """One phrase's part of the score, as FTS5's ``bm25()`` computes it: the frequency
        weighted by column, the document's length over both columns, positive."""
        n, average = self.stats()
        idf = math.log((n - df + 0.5) / (df + 0.5)) if n else 0.0
        idf = idf if idf > 0 else 1e-6
        length = self.lengths[docs].sum(axis=1).astype(np.float64)
        freq = WEIGHTS[prefix] * tfs
        return idf * freq * (K1 + 1) / (freq + K1 * (1 - B + B * length / max(average, 1e-9)))


class ColumnIndex:
    """The in-memory columns of one (SQLite) catalogue's search documents.

    Arguments:
        catalogue: the catalogue whose ``search_docs``, ``search_access`` and postings are read.
    """

    def __init__(self, catalogue: Any) -> None:
        self.catalogue = catalogue
        self._lock = threading.Lock()
        self._counter: bool | None = None
        self.parts = {"content": _Part("content"), "public": _Part("public")}
        self.deletions = 0
        self._reset()

    def _reset(self) -> None:
        self.ids = array("q")
        self.position = np.full(0, -1, dtype=np.int64)   # document id -> position, -1 absent
        self.archival_codes: list[str] = []
        self.content = _Facets()
        self.last_id = 0
        self._ranks: dict[str, np.ndarray] = {}
        self._access_loaded = False
        self.access = _Facets()
        self.access_entry = np.full(0, -1, dtype=np.int64)   # position -> public facets entry
        self.open_date = np.zeros(0, dtype=np.int32)         # position -> yyyymmdd, 0 none
        self.control_open = np.zeros(0, dtype=bool)
        self.pii_none = np.zeros(0, dtype=bool)
        self.parts["public"].reset()

    # -- keeping up with the catalogue ------------------------------------------------------
    @staticmethod
    def available(connection: Any) -> bool:
        """Whether the catalogue has what this index reads (the postings tables)."""
        from storage.search_postings import has_postings

        return has_postings(connection)

    def refresh(self, connection: Any, scoped: bool) -> None:
        """Load documents added since the last call (everything after a deletion); with
        ``scoped``, the access view too."""
        newest = connection.execute(text("SELECT max(id) FROM search_docs")).scalar() or 0
        deletions = self._deletions(connection)
        if deletions != self.deletions or newest < self.last_id:
            self._reset()
            self.parts["content"].reset()
            self.deletions = deletions
        if newest > self.last_id:
            self._load(connection)
        self.parts["content"].refresh(connection)
        if scoped:
            reset, changed = self.parts["public"].refresh(connection)
            if reset or not self._access_loaded:
                self._load_access(connection, None)
                self._access_loaded = True
            elif len(changed):
                self._load_access(connection, changed)
        self._grow_access()

    def _deletions(self, connection: Any) -> int:
        """The deletion counter; without its table (a catalogue migrated by an early build of
        revision 0006) the number of documents missing from the columns stands in for it."""
        if self._counter is None:
            self._counter = bool(connection.execute(text(
                "SELECT count(*) FROM sqlite_master WHERE name = 'search_generation'")).scalar())
        if self._counter:
            return int(connection.execute(text(
                "SELECT deletions FROM search_generation WHERE id = 1")).scalar() or 0)
        present = connection.execute(text("SELECT count(*) FROM search_docs WHERE id <= :last"),
                                     {"last": self.last_id}).scalar()
        return self.deletions + (len(self.ids) - int(present or 0))

    def _load(self, connection: Any) -> None:
        result = connection.execute(text("SELECT id, archival_code, facets FROM search_docs "
                                         "WHERE id > :last ORDER BY id"), {"last": self.last_id})
        added: list[int] = []
        while True:
            rows = result.fetchmany(LOAD_BATCH)
            if not rows:
                break
            for doc_id, code, facets in rows:
                self.ids.append(doc_id)
                added.append(doc_id)
                self.archival_codes.append(code or NO_CODE)
                self.content.add(json.loads(facets) if isinstance(facets, str) else facets or {})
                self.last_id = max(self.last_id, doc_id)
        if added:
            if self.last_id >= len(self.position):
                grow = max(self.last_id + 1, len(self.position) * 5 // 4)
                self.position = np.concatenate(
                    [self.position, np.full(grow - len(self.position), -1, dtype=np.int64)])
            first = len(self.ids) - len(added)
            self.position[np.asarray(added, dtype=np.int64)] = np.arange(first, len(self.ids))
        self._ranks.clear()

    def _grow_access(self) -> None:
        missing = len(self.ids) - len(self.access_entry)
        if missing > 0:
            self.access_entry = np.concatenate([self.access_entry,
                                                np.full(missing, -1, dtype=np.int64)])
            self.open_date = np.concatenate([self.open_date, np.zeros(missing, dtype=np.int32)])
            self.control_open = np.concatenate([self.control_open, np.zeros(missing, dtype=bool)])
            self.pii_none = np.concatenate([self.pii_none, np.zeros(missing, dtype=bool)])

    def _load_access(self, connection: Any, doc_ids: np.ndarray | None) -> None:
        """Read the access view of these documents (all of them with None)."""
        self._grow_access()
        base = ("SELECT doc_id, control, open_date, pii_level, public_facets FROM search_access")
        if doc_ids is None:
            self.access = _Facets()
            self.access_entry[:] = -1
            batches = [connection.execute(text(base + " ORDER BY doc_id"))]
        else:
            known = doc_ids[doc_ids < len(self.position)]
            known = known[self.position[known] >= 0]
            self.access_entry[self.position[known]] = -1
            batches = (connection.execute(text(
                base + f" WHERE doc_id IN ({', '.join(str(int(i)) for i in chunk)})"))
                for chunk in np.array_split(known, max(1, -(-len(known) // ID_BATCH))))
        for result in batches:
            while True:
                rows = result.fetchmany(LOAD_BATCH)
                if not rows:
                    break
                for doc_id, control, open_date, pii_level, facets in rows:
                    where = int(self.position[doc_id]) if doc_id < len(self.position) else -1
                    if where < 0:
                        continue
                    self.access_entry[where] = self.access.add(
                        json.loads(facets) if isinstance(facets, str) else facets or {})
                    self.control_open[where] = control == "开放"
                    self.open_date[where] = int(open_date.replace("-", "")) if open_date else 0
                    self.pii_none[where] = pii_level == "none"

    # -- sort keys ----------------------------------------------------------------------------
    def _rank(self) -> np.ndarray:
        """Position -> place in the whole catalogue's order by 档号 (ties by id)."""
        if "code" not in self._ranks:
            order = sorted(range(len(self.ids)), key=lambda i: (self.archival_codes[i], self.ids[i]))
            rank = np.empty(len(order), dtype=np.int64)
            rank[np.asarray(order, dtype=np.int64)] = np.arange(len(order))
            self._ranks["code"] = rank
        return self._ranks["code"]

    # -- searching ----------------------------------------------------------------------------
    def search(self, connection: Any, expression: str | None, query: Query, *, page: int,
               per_page: int, sort: str, facet_limit: int) -> Page:
        """Total, facet counts and the requested page of one query, within its scope."""
        scope = query.scope
        everything = scope is None or scope.everything
        with self._lock:
            self.refresh(connection, not everything)
            ids = np.frombuffer(self.ids, dtype=np.int64)
            visible, listed = self._scope_masks(connection, scope, everything)
            relevance = sort == "relevance"
            found = self._select(connection, "content", expression, query, visible, relevance)
            chosen = [self._filtered(found, query, self.content, self._identity(), "content")]
            if listed is not None:
                # a document found by its content is not found again by its public view
                listed[chosen[0][0]] = False
                found = self._select(connection, "public", expression, query, listed, relevance)
                chosen.append(self._filtered(found, query, self.access, self.access_entry,
                                             "listed"))
            total = sum(len(c[0]) for c in chosen)
            counts = self._facet_counts(chosen, facet_limit)
            rows = self._page(chosen, sort, (max(page, 1) - 1) * per_page, per_page, ids,
                              scope)
        return Page(total, counts, rows)

    def _identity(self) -> np.ndarray:
        return np.arange(len(self.ids), dtype=np.int64)

    @staticmethod
    def _filtered(found: tuple[np.ndarray, np.ndarray], query: Query, facets: _Facets,
                  entry_of: np.ndarray, view: str) -> tuple:
        """The matches that hold the query's facet filters, with what counting them needs."""
        positions, scores = found
        for name, wanted in sorted(query.filters.items()):
            if name in FACET_FIELDS:
                keep = facets.having(name, entry_of[positions], wanted)
                positions, scores = positions[keep], scores[keep]
        return positions, scores, facets, entry_of, view

    def _scope_masks(self, connection: Any, scope: Any,
                     everything: bool) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Per position: may the reader match the content; may they match the public view."""
        if everything:
            return None, None
        today = int(scope.today.replace("-", "")) if scope.today else 0
        has = self.access_entry >= 0
        opened = self.control_open & (self.open_date > 0) & (self.open_date <= today)
        visible = has & opened & self.pii_none if scope.see_open else np.zeros(len(has), bool)
        granted = self._granted(connection, scope.grants)
        if len(granted):
            visible[granted] = has[granted]
        if scope.list_restricted:
            listed = has.copy()
        else:
            listed = has & opened if scope.see_open else np.zeros(len(has), dtype=bool)
        return visible, listed

    def _granted(self, connection: Any, grants: frozenset) -> np.ndarray:
        """Positions of the documents a reader's grants (AIP, item or whole AIP) cover."""
        found: list[int] = []
        for aip, item in sorted(grants, key=lambda g: (g[0], g[1] or "")):
            sql = "SELECT doc_id FROM search_access WHERE aip_uuid = :a"
            params = {"a": aip}
            if item is not None:
                sql += " AND item_key = :i"
                params["i"] = item
            found += connection.execute(text(sql), params).scalars().all()
        ids = np.asarray([i for i in found if i < len(self.position)], dtype=np.int64)
        positions = self.position[ids] if len(ids) else ids
        return positions[positions >= 0]

    def _select(self, connection: Any, part: str, expression: str | None, query: Query,
                allowed: np.ndarray | None, score: bool) -> tuple[np.ndarray, np.ndarray]:
        """Positions (ascending) matching the query in one part, and their scores (negative
        BM25, lower is better, as FTS5 gives them; 0 when not scored)."""
        if expression is None:
            positions = (np.arange(len(self.ids), dtype=np.int64) if allowed is None
                         else np.flatnonzero(allowed))
            return positions, np.zeros(len(positions))
        stats = self.parts[part]
        size = len(self.position)
        match = np.ones(size, dtype=bool)
        total = np.zeros(size) if score else None
        exact = bool(query.excluded)
        for term in query.terms:
            phrases = [p for p in term_tokens(term) if p]
            if not phrases:
                continue
            exact = exact or any(len(p) > 1 for p in phrases)
            hit_grams = np.ones(size, dtype=bool)
            term_score = np.zeros(size) if score else None
            for phrase in phrases:
                docs, tfs = self._phrase(connection, stats, phrase)
                docs, tfs = docs[docs < size], tfs[docs < size]
                hit = np.zeros(size, dtype=bool)
                hit[docs] = True
                hit_grams &= hit
                if score:
                    term_score[docs] += stats.bm25("g:", docs, tfs, len(docs))
            if score:
                term_score[~hit_grams] = 0.0
            word = normalise(term).replace("\x00", " ").strip()
            hit_term = hit_grams
            if word and " " not in word:
                docs, tfs = stats.postings(connection, "w:" + word)
                docs, tfs = docs[docs < size], tfs[docs < size]
                hit_term = hit_grams.copy()
                hit_term[docs] = True
                if score:
                    term_score[docs] += stats.bm25("w:", docs, tfs, len(docs))
            match &= hit_term
            if score:
                total += term_score
        for term in query.excluded:
            for phrase in term_tokens(term):
                if len(phrase) == 1:
                    docs, _tfs = stats.postings(connection, "g:" + phrase[0])
                    match[docs[docs < size]] = False
        if exact:
            match &= self._fts_matches(connection, part, expression, size)
        doc_ids = np.flatnonzero(match)
        positions = self.position[doc_ids] if len(doc_ids) else doc_ids
        present = positions >= 0
        doc_ids, positions = doc_ids[present], positions[present]
        if allowed is not None:
            keep = allowed[positions]
            doc_ids, positions = doc_ids[keep], positions[keep]
        return positions, (-total[doc_ids] if score else np.zeros(len(positions)))

    @staticmethod
    def _phrase(connection: Any, stats: _Part, phrase: list[str]) -> tuple[np.ndarray,
                                                                          np.ndarray]:
        """Documents holding every bigram of a phrase, and the least of their frequencies
        (the phrase's own frequency when it is one token, an upper bound otherwise)."""
        docs, tfs = stats.postings(connection, "g:" + phrase[0])
        for token in phrase[1:]:
            other, other_tfs = stats.postings(connection, "g:" + token)
            both, mine, theirs = np.intersect1d(docs, other, assume_unique=True,
                                                return_indices=True)
            docs, tfs = both, np.minimum(tfs[mine], other_tfs[theirs])
        return docs, tfs

    @staticmethod
    def _fts_matches(connection: Any, part: str, expression: str, size: int) -> np.ndarray:
        """FTS5's own answer (phrases in order, exclusions) as a mask over document ids."""
        table = "search_fts" if part == "content" else "search_fts_public"
        joined = connection.execute(text(f"SELECT group_concat(rowid) FROM {table} "
                                         f"WHERE {table} MATCH :e"), {"e": expression}).scalar()
        mask = np.zeros(size, dtype=bool)
        if joined:
            ids = np.fromstring(joined, dtype=np.int64, sep=",")
            mask[ids[ids < size]] = True
        return mask

    @staticmethod
    def _facet_counts(chosen: list, limit: int) -> dict[str, list[tuple[str, int]]]:
        out = {}
        for name in FACET_FIELDS:
            merged: dict[str, int] = {}
            for positions, _scores, facets, entry_of, _view in chosen:
                if len(positions):
                    for value, count in facets.counts(name, entry_of[positions]).items():
                        merged[value] = merged.get(value, 0) + count
            if merged:
                out[name] = sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
        return out

    def _page(self, chosen: list, sort: str, start: int, per_page: int, ids: np.ndarray,
              scope: Any) -> list[tuple[int, float, str]]:
        """The page's (doc id, score, view), in the order asked for (ties by id)."""
        positions = np.concatenate([c[0] for c in chosen])
        scores = np.concatenate([c[1] for c in chosen])
        listed = np.concatenate([np.full(len(c[0]), c[4] == "listed") for c in chosen])
        if not len(positions):
            return []
        doc_ids = ids[positions]
        if sort == "code":
            keys = self._rank()[positions].astype(np.float64)
        elif sort == "date":
            years = np.concatenate([np.frombuffer(c[2].years, dtype=np.int32)[c[3][c[0]]]
                                    for c in chosen]).astype(np.float64)
            keys = np.where(years > 0, -years, 0.0)
        else:
            keys = scores if sort == "relevance" else np.zeros(len(positions))
        chosen_at = self._top(keys, doc_ids, start + per_page)[start:]
        rows = []
        for at in chosen_at:
            view = "content"
            if listed[at]:
                where = positions[at]
                opened = (self.control_open[where] and self.open_date[where] > 0
                          and self.open_date[where] <= int(scope.today.replace("-", "")))
                view = "masked" if scope.see_open and opened else "listed"
            rows.append((int(doc_ids[at]), float(scores[at]) if sort == "relevance" else 0.0,
                         view))
        return rows

    @staticmethod
    def _top(keys: np.ndarray, ids: np.ndarray, k: int) -> np.ndarray:
        """Indexes of the ``k`` smallest (key, id) pairs, in order."""
        if k <= 0:
            return np.zeros(0, dtype=np.int64)
        if len(keys) > k:
            bound = np.partition(keys, k - 1)[k - 1]
            candidates = np.flatnonzero(keys <= bound)
        else:
            candidates = np.arange(len(keys))
        order = np.lexsort((ids[candidates], keys[candidates]))
        return candidates[order[:k]]
