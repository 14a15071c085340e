"""The embedded engine's search over SQLite, computed in memory with numpy.

With a million documents a two-character word matches a hundred thousand of them or more;
reading their rows back to count facets, apply the reader's access scope and rank them costs
seconds, and FTS5's ``bm25()`` alone costs about a microsecond a match. Instead each process
keeps:

* per search document, compact columns: one per facet field (value codes in numpy arrays,
  lists as offsets + values), the sort keys, and — for scoped readers — the access view
  (control flag, open date, PII level, public facets) from ``search_access``;
* per part (``content``, ``public``), the document statistics of the term postings
  (:mod:`storage.index.postings`): newest entry and token counts of every document.

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

from access.search.base import CACHE_MIB
from access.search.facets import day_key
from access.search.query import FACET_FIELDS, Query
from storage.index import normalise, term_tokens

LOAD_BATCH = 50_000
NO_CODE = "\uffff"
K1, B = 1.2, 0.75
WEIGHTS = {"g:": 1.0, "w:": 3.0}
JOINT_BINS = 1 << 18
ID_BATCH = 900


@dataclass
class _Column:
    """One facet field. Each entry holds a *set code*: the code of the distinct list of values
    it holds (a record's poverty causes are one of a few hundred combinations), so counting
    and filtering are one ``bincount`` or one lookup over the entries, lists or not."""

    values: list[str] = field(default_factory=list)
    codes: dict[str, int] = field(default_factory=dict)
    sets: list[tuple[int, ...]] = field(default_factory=lambda: [()])
    set_codes: dict[tuple[int, ...], int] = field(default_factory=lambda: {(): 0})
    held: array = field(default_factory=lambda: array("i"))   # entry -> set code

    def add(self, value: Any) -> None:
        """Append one entry holding ``value`` (a scalar, a list, or None for nothing)."""
        values = [] if value is None else value if isinstance(value, list) else [value]
        held = []
        for v in values:
            key = str(v)
            code = self.codes.get(key)
            if code is None:
                code = self.codes[key] = len(self.values)
                self.values.append(key)
            held.append(code)
        combination = tuple(held)
        number = self.set_codes.get(combination)
        if number is None:
            number = self.set_codes[combination] = len(self.sets)
            self.sets.append(combination)
        self.held.append(number)

    def flat(self) -> tuple[np.ndarray, np.ndarray]:
        """The sets as arrays: set ``n`` holds the value codes ``held[starts[n]:starts[n+1]]``
        (kept until a new set appears)."""
        kept = getattr(self, "_flat", None)
        if kept is None or len(kept[0]) != len(self.sets) + 1:
            sizes = np.fromiter((len(held) for held in self.sets), dtype=np.int64,
                                count=len(self.sets))
            starts = np.concatenate([[0], np.cumsum(sizes)])
            held = np.fromiter((code for held in self.sets for code in held), dtype=np.int64,
                               count=int(starts[-1]))
            kept = self._flat = (starts, held)
        return kept


class _Facets:
    """The facet columns of a set of entries (documents, or their public views)."""

    def __init__(self) -> None:
        self.columns = {name: _Column() for name in FACET_FIELDS}
        self.days = array("i")     # the 年度 order's key (access.search.facets.day_key)
        self.entries = 0

    def add(self, facets: dict[str, Any]) -> int:
        for name, column in self.columns.items():
            column.add(facets.get(name))
        self.days.append(day_key(facets))
        self.entries += 1
        return self.entries - 1

    def having(self, name: str, entries: np.ndarray, wanted: Sequence[str]) -> np.ndarray:
        """A mask over ``entries``: those holding one of the wanted values."""
        column = self.columns[name]
        codes = {column.codes[v] for v in wanted if v in column.codes}
        table = np.fromiter((bool(codes.intersection(held)) for held in column.sets),
                            dtype=bool, count=len(column.sets))
        return table[np.frombuffer(column.held, dtype=np.int32)[entries]]

    def counts(self, entries: np.ndarray) -> dict[str, dict[str, int]]:
        """Per facet field, value -> how many of these entries hold it."""
        out: dict[str, dict[str, int]] = {}
        for names, radices, joint in self._joints():
            per = np.bincount(joint[entries], minlength=int(np.prod(radices)))
            # each field's counts from the combinations present only (a few thousand of
            # the group's bins), not by summing the whole table once per field
            present = np.flatnonzero(per)
            weights = per[present]
            coordinates = np.unravel_index(present, radices)
            for axis, name in enumerate(names):
                column = self.columns[name]
                starts, held = column.flat()
                # a set's count goes to each value it holds: expand the sets present into
                # (value, count) pairs and add them up per value
                numbers = coordinates[axis]
                sizes = starts[numbers + 1] - starts[numbers]
                at = np.repeat(starts[numbers] - np.cumsum(sizes) + sizes, sizes) \
                    + np.arange(int(sizes.sum()))
                per_value = np.bincount(held[at], weights=np.repeat(weights, sizes),
                                        minlength=len(column.values)).astype(np.int64)
                found = np.flatnonzero(per_value)
                out[name] = dict(zip([column.values[i] for i in found],
                                     per_value[found].tolist()))
        return out

    def _joints(self) -> list[tuple[list[str], tuple[int, ...], np.ndarray]]:
        """Facet fields packed together: one code per entry for several small fields (the
        mixed-radix number of their set codes), so that one ``bincount`` counts them all.
        Radices keep room to grow; entries added later are packed as they come, and the
        packing is redone when a field outgrows its radix."""
        built = getattr(self, "_packed", None)
        if built is not None:
            groups, done = built
            if all(len(self.columns[n].sets) <= r for names, radices, _ in groups
                   for n, r in zip(names, radices)):
                if done < self.entries:
                    groups = [(names, radices, np.concatenate(
                        [joint, self._pack(names, radices, done)])) for names, radices, joint
                              in groups]
                    self._packed = (groups, self.entries)
                return groups
        fields = sorted(self.columns, key=lambda n: len(self.columns[n].sets))
        groups, current, size = [], [], 1
        for name in fields:
            radix = 2 * len(self.columns[name].sets) + 1
            if current and size * radix > JOINT_BINS:
                groups.append(current)
                current, size = [], 1
            current.append((name, radix))
            size *= radix
        groups.append(current)
        packed = []
        for group in groups:
            names, radices = [n for n, _ in group], tuple(r for _, r in group)
            packed.append((names, radices, self._pack(names, radices, 0)))
        self._packed = (packed, self.entries)
        return packed

    def _pack(self, names: list[str], radices: tuple[int, ...], start: int) -> np.ndarray:
        joint = np.zeros(self.entries - start, dtype=np.int64)
        for name, radix in zip(names, radices):
            joint *= radix
            joint += np.frombuffer(self.columns[name].held, dtype=np.int32)[start:]
        return joint


@dataclass
class Page:
    """What the in-memory search found: total, facet counts and the page's hits in order
    as (document id, score, view) — view ``content``, ``masked`` or ``listed``."""

    total: int
    facets: dict[str, list[tuple[str, int]]]
    rows: list[tuple[int, float, str]]


@dataclass
class _Found:
    """Matches of one part: positions, scores, facet entries, their facets, their view."""

    positions: np.ndarray
    scores: np.ndarray
    entries: np.ndarray
    facets: _Facets
    view: str


class _Part:
    """The postings statistics of one part (``content`` or ``public``) of the index, and the
    postings and scores its searches keep (up to ``cache_bytes``)."""

    def __init__(self, name: str, cache_bytes: int = CACHE_MIB << 20) -> None:
        self.name = name
        self.cache_bytes = cache_bytes
        self.reset()

    def reset(self) -> None:
        self.latest = np.zeros(0, dtype=np.int64)      # doc id -> gen of its newest entry
        self.lengths = np.zeros((0, 2), dtype=np.int32)  # doc id -> grams, words (-1 deleted)
        self.gens: dict[int, int] = {}                   # segment id -> gen
        self.last_segment = 0
        self.clears = -1
        self.max_gen = 0
        self.terms: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self.held: dict[int, list] = {}    # id -> [array, entries holding it]
        self.kept = 0
        self._stats: tuple[int, float, float] | None = None

    def state_sql(self) -> str:
        """SQL columns giving the part's state: clears, segments, newest segment."""
        where = f"part = '{self.name}'"
        return (f"(SELECT clears FROM search_postings_state WHERE {where}), "
                f"(SELECT count(*) FROM search_segments WHERE {where}), "
                f"(SELECT max(id) FROM search_segments WHERE {where})")

    def refresh(self, connection: Any, state: Sequence[Any] | None = None
                ) -> tuple[bool, np.ndarray]:
        """Catch up with the segments table (``state``: the values of :meth:`state_sql`,
        read by the caller with others in one statement).

        Returns:
            (reset, changed): whether the part was cleared (every document changed), and the
            ids of documents whose entry changed since the last call.
        """
        if state is None:
            state = connection.execute(text(f"SELECT {self.state_sql()}")).one()
        clears, count, newest = (int(v or 0) for v in state)
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
        self.forget()
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

    def stats(self) -> tuple[int, np.ndarray]:
        """Live documents (BM25's N) and, by doc id, the length part of BM25's denominator:
        k1 (1 - b + b dl / avgdl), dl counting the tokens of both columns as FTS5 does."""
        if self._stats is None:
            total = self.lengths.sum(axis=1, dtype=np.int64)
            live = (self.latest > 0) & (self.lengths[:, 0] >= 0)
            n = int(live.sum())
            average = float(total[live].mean()) if n else 1.0
            self._stats = (n, K1 * (1 - B + B * total / max(average, 1e-9)))
        return self._stats

    def postings(self, connection: Any, term: str) -> tuple[np.ndarray, np.ndarray]:
        """(doc ids, term frequencies) of a token's live entries, by doc id."""
        return self.cached("p" + term, lambda: self._read(connection, term))

    def scored(self, connection: Any, term: str) -> tuple[np.ndarray, np.ndarray]:
        """(doc ids, BM25 part) of a one-token phrase."""
        def score() -> tuple[np.ndarray, np.ndarray]:
            docs, tfs = self.postings(connection, term)
            return docs, self.bm25(term[:2], docs, tfs, len(docs))

        return self.cached("s" + term, score)

    def _read(self, connection: Any, term: str) -> tuple[np.ndarray, np.ndarray]:
        rows = connection.execute(text(
            "SELECT segment, docs, tfs FROM search_postings WHERE part = :p AND term = :t"),
            {"p": self.name, "t": term}).all()
        pieces = []
        for segment, blob, counted in rows:
            docs = np.frombuffer(blob, dtype=np.uint32).astype(np.int64)
            counts = np.frombuffer(counted, dtype=np.uint16)
            if not len(docs):
                continue
            if docs[-1] >= len(self.latest):
                inside = docs < len(self.latest)
                docs, counts = docs[inside], counts[inside]
            # an entry counts when its segment holds the document's newest version (a newer
            # version, or a tombstone, lives in a newer segment)
            valid = self.latest[docs] == self.gens.get(segment, -1)
            pieces.append((docs[valid], counts[valid]))
        pieces = sorted((p for p in pieces if len(p[0])), key=lambda p: p[0][0])
        if pieces:
            docs = np.concatenate([p[0] for p in pieces])
            tfs = np.concatenate([p[1] for p in pieces])
            if any(a[0][-1] >= b[0][0] for a, b in zip(pieces, pieces[1:])):
                order = np.argsort(docs, kind="stable")
                docs, tfs = docs[order], tfs[order]
        else:
            docs, tfs = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint16)
        return docs, tfs

    def forget(self) -> None:
        """Drop every kept postings list and score."""
        self.terms.clear()
        self.held.clear()
        self.kept = 0

    def cached(self, key: str, compute: Any) -> Any:
        """A value (a pair of arrays) kept until the part changes, the least recently used
        forgotten beyond ``cache_bytes``; ``compute()`` makes it when it is missing.

        An array several values share (a word's documents, in its postings and its scores)
        is counted once.
        """
        found = self.terms.get(key)
        if found is not None:
            self.terms.move_to_end(key)
            return found
        found = self.terms[key] = compute()
        for array_ in found:
            entry = self.held.get(id(array_))
            if entry is None:
                self.held[id(array_)] = [array_, 1]
                self.kept += array_.nbytes
            else:
                entry[1] += 1
        while self.kept > self.cache_bytes and len(self.terms) > 1:
            _key, old = self.terms.popitem(last=False)
            for array_ in old:
                entry = self.held[id(array_)]
                entry[1] -= 1
                if not entry[1]:
                    del self.held[id(array_)]
                    self.kept -= array_.nbytes
        return found

    def bm25(self, prefix: str, docs: np.ndarray, tfs: np.ndarray, df: int) -> np.ndarray:
        """One phrase's part of the score, as FTS5's ``bm25()`` computes it (the frequency
        weighted by column), positive."""
        n, norm = self.stats()
        idf = math.log((n - df + 0.5) / (df + 0.5)) if n else 0.0
        idf = idf if idf > 0 else 1e-6
        freq = WEIGHTS[prefix] * tfs
        return idf * (K1 + 1) * freq / (freq + norm[docs])


def _within(docs: np.ndarray, others: np.ndarray) -> np.ndarray:
    """A mask over sorted ``docs``: those also in sorted ``others``."""
    if not len(others) or not len(docs):
        return np.zeros(len(docs), dtype=bool)
    at = np.minimum(np.searchsorted(others, docs), len(others) - 1)
    return others[at] == docs


class _Slots:
    """A reusable doc id -> index table (-1: absent) for matching two posting lists in
    linear time; every use leaves it all -1 again."""

    def __init__(self) -> None:
        self.table = np.full(0, -1, dtype=np.int64)

    def find(self, docs: np.ndarray, wanted: np.ndarray) -> np.ndarray:
        """For each of ``wanted``, its index in ``docs`` or -1 (both sorted, unique)."""
        if not len(docs) or not len(wanted):
            return np.full(len(wanted), -1, dtype=np.int64)
        size = int(max(docs[-1], wanted[-1])) + 1
        if size > len(self.table):
            self.table = np.full(max(size, len(self.table) * 5 // 4), -1, dtype=np.int64)
        self.table[docs] = np.arange(len(docs))
        try:
            return self.table[wanted]
        finally:
            self.table[docs] = -1

    def both(self, one: tuple[np.ndarray, np.ndarray],
             two: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Documents in both (sorted ids, scores): the scores added."""
        (small, small_scores), (big, big_scores) = sorted((one, two), key=lambda x: len(x[0]))
        at = self.find(big, small)
        hit = at >= 0
        return small[hit], small_scores[hit] + big_scores[at[hit]]

    def either(self, one: tuple[np.ndarray, np.ndarray] | None,
               two: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Documents in one or the other (sorted ids, scores): scores of both added."""
        if one is None or not len(one[0]):
            return two
        if not len(two[0]):
            return one
        docs, scores = one
        at = self.find(docs, two[0])
        hit = at >= 0
        if hit.all():   # the usual case: a whole word's documents hold its bigrams too
            scores = scores.copy()
            scores[at] += two[1]
            return docs, scores
        merged = np.concatenate([docs, two[0]])
        merged_scores = np.concatenate([scores, two[1]])
        order = np.argsort(merged, kind="stable")
        merged, merged_scores = merged[order], merged_scores[order]
        starts = np.flatnonzero(np.concatenate([[True], merged[1:] != merged[:-1]]))
        return merged[starts], np.add.reduceat(merged_scores, starts)


class ColumnIndex:
    """The in-memory columns of one (SQLite) catalogue's search documents.

    Arguments:
        catalogue: the catalogue whose ``search_docs``, ``search_access`` and postings are read.
        cache_mib: postings and scores kept in memory, per part, in MiB.
    """

    def __init__(self, catalogue: Any, cache_mib: int = CACHE_MIB) -> None:
        self.catalogue = catalogue
        self._lock = threading.Lock()
        self._slots = _Slots()
        self.parts = {name: _Part(name, max(cache_mib, 0) << 20)
                      for name in ("content", "public")}
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

    def drop_caches(self) -> None:
        """Forget the kept postings and scores of every part."""
        with self._lock:
            for part in self.parts.values():
                part.forget()

    # -- keeping up with the catalogue ------------------------------------------------------
    @staticmethod
    def available(connection: Any) -> bool:
        """Whether the catalogue has what this index reads (the postings tables)."""
        from storage.index import postings

        return postings.has_postings(connection)

    def refresh(self, connection: Any, scoped: bool) -> None:
        """Load documents added since the last call (everything after a deletion); with
        ``scoped``, the access view too."""
        content, public = self.parts["content"], self.parts["public"]
        # one statement for the whole state: searches run this every time
        state = connection.execute(text(
            "SELECT (SELECT max(id) FROM search_docs), "
            "(SELECT deletions FROM search_generation WHERE id = 1), "
            f"{content.state_sql()}, {public.state_sql()}")).one()
        newest, deletions = int(state[0] or 0), int(state[1] or 0)
        if deletions != self.deletions or newest < self.last_id:
            self._reset()
            content.reset()
            self.deletions = deletions
        if newest > self.last_id:
            self._load(connection)
        content.refresh(connection, state[2:5])
        if scoped:
            reset, changed = public.refresh(connection, state[5:8])
            if reset or not self._access_loaded:
                self._load_access(connection, None)
                self._access_loaded = True
            elif len(changed):
                self._load_access(connection, changed)
        self._grow_access()

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
            chosen = [self._filtered(found, query, self.content, None, "content")]
            if listed is not None:
                # a document found by its content is not found again by its public view
                listed[chosen[0].positions] = False
                found = self._select(connection, "public", expression, query, listed, relevance)
                chosen.append(self._filtered(found, query, self.access, self.access_entry,
                                             "listed"))
            total = sum(len(c.positions) for c in chosen)
            counts = self._facet_counts(chosen, facet_limit)
            rows = self._page(chosen, sort, (max(page, 1) - 1) * per_page, per_page, ids,
                              scope)
        return Page(total, counts, rows)

    @staticmethod
    def _filtered(found: tuple[np.ndarray, np.ndarray], query: Query, facets: _Facets,
                  entry_of: np.ndarray | None, view: str) -> _Found:
        """The matches that hold the query's facet filters, with what counting them needs
        (``entry_of``: position -> facet entry; None when they are the same)."""
        positions, scores = found
        entries = positions if entry_of is None else entry_of[positions]
        for name, wanted in sorted(query.filters.items()):
            if name in FACET_FIELDS:
                keep = facets.having(name, entries, wanted)
                positions, scores, entries = positions[keep], scores[keep], entries[keep]
        return _Found(positions, scores, entries, facets, view)

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
        found: tuple[np.ndarray, np.ndarray] | None = None
        exact = bool(query.excluded)
        for term in query.terms:
            phrases = [p for p in term_tokens(term) if p]
            if not phrases:
                continue
            exact = exact or any(len(p) > 1 for p in phrases)
            one = stats.cached(f"t{score:d}{term}",
                               lambda t=term, p=phrases: self._term(connection, stats, t, p, score))
            found = one if found is None else self._slots.both(found, one)
        if found is None:
            found = (np.zeros(0, dtype=np.int64), np.zeros(0))
        docs, scores = found
        for term in query.excluded:
            for phrase in term_tokens(term):
                if len(phrase) == 1:
                    gone, _tfs = stats.postings(connection, "g:" + phrase[0])
                    keep = ~_within(docs, gone)
                    docs, scores = docs[keep], scores[keep]
        if exact:
            keep = _within(docs, self._fts_matches(connection, part, expression))
            docs, scores = docs[keep], scores[keep]
        if len(docs) and docs[-1] >= len(self.position):
            inside = docs < len(self.position)
            docs, scores = docs[inside], scores[inside]
        positions = self.position[docs]
        keep = positions >= 0
        if allowed is not None:
            keep &= allowed[np.where(keep, positions, 0)]
        elif bool(keep.all()):   # nothing deleted, nothing out of scope: no copies
            return positions, (np.negative(scores) if score else np.zeros(len(positions)))
        return positions[keep], (-scores[keep] if score else np.zeros(int(keep.sum())))

    def _term(self, connection: Any, stats: _Part, term: str, phrases: list[list[str]],
              score: bool) -> tuple[np.ndarray, np.ndarray]:
        """Documents matching one query word (every phrase of its bigrams, or the whole word
        as a dictionary word) and its part of their BM25 score."""
        grams: tuple[np.ndarray, np.ndarray] | None = None
        for phrase in phrases:
            if score and len(phrase) == 1:
                one = stats.scored(connection, "g:" + phrase[0])
            else:
                docs, tfs = self._phrase(connection, stats, phrase)
                one = (docs, stats.bm25("g:", docs, tfs, len(docs)) if score else tfs)
            grams = one if grams is None else self._slots.both(grams, one)
        word = normalise(term).replace("\x00", " ").strip()
        if word and " " not in word:
            grams = self._slots.either(grams, stats.scored(connection, "w:" + word) if score
                                       else stats.postings(connection, "w:" + word))
        return grams

    def _phrase(self, connection: Any, stats: _Part, phrase: list[str]) -> tuple[np.ndarray,
                                                                                np.ndarray]:
        """Documents holding every bigram of a phrase, and the least of their frequencies
        (the phrase's own frequency when it is one token, an upper bound otherwise)."""
        docs, tfs = stats.postings(connection, "g:" + phrase[0])
        for token in phrase[1:]:
            other, other_tfs = stats.postings(connection, "g:" + token)
            at = self._slots.find(other, docs)
            hit = at >= 0
            docs, tfs = docs[hit], np.minimum(tfs[hit], other_tfs[at[hit]])
        return docs, tfs

    @staticmethod
    def _fts_matches(connection: Any, part: str, expression: str) -> np.ndarray:
        """FTS5's own answer (phrases in order, exclusions): sorted document ids."""
        table = "search_fts" if part == "content" else "search_fts_public"
        joined = connection.execute(text(f"SELECT group_concat(rowid) FROM {table} "
                                         f"WHERE {table} MATCH :e"), {"e": expression}).scalar()
        if not joined:
            return np.zeros(0, dtype=np.int64)
        return np.sort(np.fromstring(joined, dtype=np.int64, sep=","))

    @staticmethod
    def _facet_counts(chosen: list[_Found], limit: int) -> dict[str, list[tuple[str, int]]]:
        merged: dict[str, dict[str, int]] = {name: {} for name in FACET_FIELDS}
        for found in chosen:
            if len(found.entries):
                for name, counted in found.facets.counts(found.entries).items():
                    into = merged[name]
                    for value, count in counted.items():
                        into[value] = into.get(value, 0) + count
        return {name: sorted(counted.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
                for name, counted in merged.items() if counted}

    def _page(self, chosen: list[_Found], sort: str, start: int, per_page: int,
              ids: np.ndarray, scope: Any) -> list[tuple[int, float, str]]:
        """The page's (doc id, score, view), in the order asked for (ties by id)."""
        def joined(parts: list[np.ndarray]) -> np.ndarray:
            return parts[0] if len(parts) == 1 else np.concatenate(parts)

        positions = joined([c.positions for c in chosen])
        if not len(positions):
            return []
        scores = joined([c.scores for c in chosen])
        if sort == "code":
            keys = self._rank()[positions]
        elif sort == "date":
            days = joined([np.frombuffer(c.facets.days, dtype=np.int32)[c.entries]
                           for c in chosen])
            keys = -days
        else:
            keys = scores
        chosen_at = self._top(keys, positions, ids, start + per_page)[start:]
        first_listed = len(chosen[0].positions) if chosen[0].view == "content" else 0
        today = int(scope.today.replace("-", "")) if scope is not None and scope.today else 0
        rows = []
        for at in chosen_at:
            view = "content"
            if at >= first_listed:
                where = positions[at]
                opened = (self.control_open[where] and 0 < self.open_date[where] <= today)
                view = "masked" if scope.see_open and opened else "listed"
            rows.append((int(ids[positions[at]]),
                         float(scores[at]) if sort == "relevance" else 0.0, view))
        return rows

    @staticmethod
    def _top(keys: np.ndarray, positions: np.ndarray, ids: np.ndarray, k: int) -> np.ndarray:
        """Indexes of the ``k`` smallest keys, in order, ties by document id."""
        if k <= 0:
            return np.zeros(0, dtype=np.int64)
        if len(keys) > k:
            bound = np.partition(keys, k - 1)[k - 1]
            candidates = np.flatnonzero(keys <= bound)
        else:
            candidates = np.arange(len(keys))
        order = np.lexsort((ids[positions[candidates]], keys[candidates]))
        return candidates[order[:k]]
