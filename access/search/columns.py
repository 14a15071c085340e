"""Facet values and sort keys of every search document, in memory, for the embedded engine.

With a million documents a two-character word matches a hundred thousand of them; reading
their rows back to count facets and sort them costs seconds. Instead, each process keeps one
compact column per facet field (value codes in numpy arrays, lists as offsets + values) and
the sort keys, loaded once from ``search_docs`` and extended as documents are added. A query
then asks SQLite FTS5 only for the matching rowids (one ``group_concat``), filters and counts
facets with numpy, picks the page by sort key, and reads back the page's rows alone. Relevance
(BM25) still comes from FTS5, computed over the filtered matches only.

The answers are those of the row-by-row path they replace (the search parity tests check it):
the same totals, facet counts (ties by value) and order (ties by document id); hits sorted by
档号 or date carry no relevance score (0.0).
New documents are seen at once (the highest id is checked on every search); a deletion from
``search_docs`` bumps a counter (a trigger, ``search_generation``) and the columns are then
loaded again.
"""

from __future__ import annotations

import json
import threading
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import text

from access.search.query import FACET_FIELDS, Query

LOAD_BATCH = 50_000
NO_CODE = "\uffff"


@dataclass
class _Column:
    """One facet field: value strings, their codes, and per document the codes it holds."""

    values: list[str] = field(default_factory=list)
    codes: dict[str, int] = field(default_factory=dict)
    offsets: array = field(default_factory=lambda: array("q", [0]))
    members: array = field(default_factory=lambda: array("i"))
    first: array = field(default_factory=lambda: array("i"))   # the one code, or -1
    single: bool = True                                           # no document holds two

    def add(self, value: Any) -> None:
        """Append one document holding ``value`` (a scalar, a list, or None for nothing)."""
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


@dataclass
class Page:
    """What the fast path found: total, facet counts and the page's (id, score) in order."""

    total: int
    facets: dict[str, list[tuple[str, int]]]
    rows: list[tuple[int, float]]


class ColumnIndex:
    """The in-memory columns of one catalogue's search documents (SQLite).

    Arguments:
        catalogue: the catalogue whose ``search_docs`` and ``search_fts`` are read.
    """

    def __init__(self, catalogue: Any) -> None:
        self.catalogue = catalogue
        self._lock = threading.Lock()
        self._counter: bool | None = None
        self._reset()

    def _reset(self) -> None:
        self.ids = array("q")
        self.position = array("i")           # document id -> position, -1 when absent
        self.archival_codes: list[str] = []
        self.years = array("i")
        self.columns = {name: _Column() for name in FACET_FIELDS}
        self.last_id = 0
        self.deletions = getattr(self, "deletions", 0)
        self._ranks: dict[str, np.ndarray] = {}

    # -- keeping up with the catalogue ------------------------------------------------------
    def refresh(self, connection: Any) -> None:
        """Load documents added since the last call (everything after a deletion)."""
        with self._lock:
            newest = connection.execute(text("SELECT max(id) FROM search_docs")).scalar() or 0
            deletions = self._deletions(connection)
            if deletions != self.deletions or newest < self.last_id:
                self._reset()
                self.deletions = deletions
            if newest > self.last_id:
                self._load(connection)

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
        while True:
            rows = result.fetchmany(LOAD_BATCH)
            if not rows:
                break
            for doc_id, code, facets in rows:
                self._add(doc_id, code, json.loads(facets) if isinstance(facets, str)
                          else facets or {})
        self._ranks.clear()

    def _add(self, doc_id: int, code: str | None, facets: dict[str, Any]) -> None:
        if doc_id >= len(self.position):
            self.position.extend([-1] * (doc_id + 1 - len(self.position)))
        self.position[doc_id] = len(self.ids)
        self.ids.append(doc_id)
        self.archival_codes.append(code or NO_CODE)
        year = str(facets.get("year") or "")
        self.years.append(int(year) if year.isdigit() else 0)
        for name, column in self.columns.items():
            column.add(facets.get(name))
        self.last_id = max(self.last_id, doc_id)

    # -- sort keys ----------------------------------------------------------------------------
    def _rank(self, sort: str) -> np.ndarray:
        """Position -> place in the whole catalogue's order for ``code`` or ``date``."""
        if sort not in self._ranks:
            ids = np.frombuffer(self.ids, dtype=np.int64)
            if sort == "code":
                order = sorted(range(len(self.ids)),
                               key=lambda i: (self.archival_codes[i], self.ids[i]))
                order = np.asarray(order, dtype=np.int64)
            else:
                years = np.frombuffer(self.years, dtype=np.int32).astype(np.int64)
                order = np.lexsort((ids, np.where(years > 0, -years, 0)))
            rank = np.empty(len(order), dtype=np.int64)
            rank[order] = np.arange(len(order))
            self._ranks[sort] = rank
        return self._ranks[sort]

    # -- searching ----------------------------------------------------------------------------
    def search(self, connection: Any, expression: str | None, query: Query, *, page: int,
               per_page: int, sort: str, facet_limit: int) -> Page:
        """Total, facet counts and the requested page of one unscoped query."""
        self.refresh(connection)
        with self._lock:
            positions = self._matches(connection, expression)
            for name, wanted in sorted(query.filters.items()):
                if name in FACET_FIELDS:
                    positions = positions[self._having(self.columns[name], positions, wanted)]
            facets = {name: self._counts(column, positions, facet_limit)
                      for name, column in self.columns.items()}
            facets = {name: counts for name, counts in facets.items() if counts}
            start = (max(page, 1) - 1) * per_page
            ids = np.frombuffer(self.ids, dtype=np.int64)
            if sort in ("code", "date"):
                chosen = self._top(self._rank(sort)[positions], start + per_page)[start:]
                # no BM25 here: FTS5 would run the query once per id to score the page
                rows = [(int(i), 0.0) for i in ids[positions[chosen]]]
            elif expression:
                rows = self._by_relevance(connection, expression, ids[positions],
                                          len(positions) == self._match_count, start, per_page)
            else:
                rows = [(int(i), 0.0) for i in np.sort(ids[positions])[start:start + per_page]]
        return Page(len(positions), facets, rows)

    def _matches(self, connection: Any, expression: str | None) -> np.ndarray:
        if not expression:
            self._match_count = len(self.ids)
            return np.arange(len(self.ids), dtype=np.int64)
        joined = connection.execute(text("SELECT group_concat(rowid) FROM search_fts "
                                         "WHERE search_fts MATCH :e"), {"e": expression}).scalar()
        if not joined:
            self._match_count = 0
            return np.zeros(0, dtype=np.int64)
        ids = np.fromstring(joined, dtype=np.int64, sep=",")
        known = ids[ids < len(self.position)]
        positions = np.frombuffer(self.position, dtype=np.int32)[known].astype(np.int64)
        positions = np.sort(positions[positions >= 0])
        self._match_count = len(positions)
        return positions

    @staticmethod
    def _segments(column: _Column, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The value codes held by these documents, and for each the document's index."""
        if column.single:
            codes = np.frombuffer(column.first, dtype=np.int32)[positions]
            held = np.nonzero(codes >= 0)[0]
            return codes[held], held
        offsets = np.frombuffer(column.offsets, dtype=np.int64)
        members = np.frombuffer(column.members, dtype=np.int32)
        starts, ends = offsets[positions], offsets[positions + 1]
        lengths = ends - starts
        total = int(lengths.sum())
        if total == 0:
            return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int64)
        begins = np.cumsum(lengths) - lengths
        index = np.arange(total, dtype=np.int64) + np.repeat(starts - begins, lengths)
        owner = np.repeat(np.arange(len(positions), dtype=np.int64), lengths)
        return members[index], owner

    def _having(self, column: _Column, positions: np.ndarray,
                wanted: Sequence[str]) -> np.ndarray:
        """Indexes (into ``positions``) of documents holding one of the wanted values."""
        codes = [column.codes[v] for v in wanted if v in column.codes]
        if not codes:
            return np.zeros(0, dtype=np.int64)
        held, owner = self._segments(column, positions)
        return np.unique(owner[np.isin(held, codes)])

    def _counts(self, column: _Column, positions: np.ndarray,
                limit: int) -> list[tuple[str, int]]:
        held, _owner = self._segments(column, positions)
        if not len(held):
            return []
        counts = np.bincount(held, minlength=len(column.values))
        found = np.nonzero(counts)[0]
        ranked = sorted(((column.values[c], int(counts[c])) for c in found),
                        key=lambda kv: (-kv[1], kv[0]))
        return ranked[:limit]

    @staticmethod
    def _top(keys: np.ndarray, k: int) -> np.ndarray:
        """Indexes of the ``k`` smallest keys, in order."""
        if k <= 0:
            return np.zeros(0, dtype=np.int64)
        if len(keys) > k:
            part = np.argpartition(keys, k - 1)[:k]
            return part[np.argsort(keys[part], kind="stable")]
        return np.argsort(keys, kind="stable")

    @staticmethod
    def _by_relevance(connection: Any, expression: str, ids: np.ndarray, unfiltered: bool,
                      start: int, per_page: int) -> list[tuple[int, float]]:
        """BM25 order (ties by id) of the matches that passed the filters."""
        if not len(ids):
            return []
        if unfiltered:
            rows = connection.execute(text(
                "SELECT rowid, bm25(search_fts, 1.0, 3.0) AS score FROM search_fts "
                "WHERE search_fts MATCH :e ORDER BY score, rowid LIMIT :n OFFSET :o"),
                {"e": expression, "n": per_page, "o": start})
            return [(int(r[0]), float(r[1])) for r in rows]
        # every match's score in one row (a rowid IN (…) constraint would make FTS5 run the
        # query once per id), then the filtered ones ordered here; the subquery's LIMIT keeps
        # SQLite from folding it into the aggregate, where bm25() may not run
        found, scores = connection.execute(text(
            "SELECT group_concat(r), group_concat(s) FROM (SELECT rowid AS r, "
            "bm25(search_fts, 1.0, 3.0) AS s FROM search_fts WHERE search_fts MATCH :e "
            "LIMIT -1)"),
            {"e": expression}).one()
        rowids = np.fromstring(found, dtype=np.int64, sep=",")
        values = np.fromstring(scores, dtype=np.float64, sep=",")
        keep = np.isin(rowids, ids)
        rowids, values = rowids[keep], values[keep]
        order = np.lexsort((rowids, values))[start:start + per_page]
        return [(int(rowids[i]), float(values[i])) for i in order]
