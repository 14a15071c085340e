"""The embedded engine's in-memory search (access/search/columns.py) answers exactly as its
row-by-row SQL path on the same SQLite catalogue, for every reader's scope, and ranks by the
same BM25 that FTS5 computes."""

from __future__ import annotations

import re

import numpy as np
import pytest
from sqlalchemy import select, text

from access.rules import Reader, load_rules, scope_for
from access.search import parse_query
from access.search.embedded import EmbeddedSearch
from access.search_access import AccessIndex
from storage.catalogue import Catalogue, SearchDocument

UUID = re.compile(r"[0-9a-f]{8}(?:-[0-9a-f-]*|(?=…))")   # an AIP id, maybe cut short
QUERIES = ["因病", "扶贫", "贫困户", "category:02", "光伏", "合作社 分红", "year:2016",
           "因病 -因残", '"易地扶贫搬迁"', "低保 county:630121", "不存在的词", ""]


def _answer(result) -> tuple:
    return (result.total, result.facets,
            [(h.aip_uuid, h.item_key, h.view, h.title, h.snippet, h.facets) for h in result.hits])


def test_scoped_searches_answer_as_the_sql_path(holding) -> None:
    rules = load_rules(holding.settings)
    catalogue = Catalogue.open(holding.settings)
    AccessIndex(catalogue, rules).sync()
    fast, rows = EmbeddedSearch(catalogue), EmbeddedSearch(catalogue, columnar=False)
    readers = [Reader("public"), Reader("researcher", "r"),
               Reader("researcher", "g", frozenset({(holding.restricted, None)})),
               Reader("researcher", "i", frozenset({(holding.restricted, "item-002")})),
               Reader("auditor", "a"), Reader("archivist", "x")]
    views, totals = set(), set()
    for reader in readers:
        for text_ in QUERIES:
            for sort in ("code", "date", "relevance"):
                query = parse_query(text_)
                query.scope = scope_for(reader, rules)
                one = fast.search(query, per_page=200, sort=sort, facet_limit=50)
                two = rows.search(query, per_page=200, sort=sort, facet_limit=50)
                where = (reader.role, reader.grants, text_, sort)
                if sort == "relevance":   # the same hits; scores come from different code
                    assert one.total == two.total and one.facets == two.facets, where
                    assert sorted(_answer(one)[2], key=str) == sorted(_answer(two)[2], key=str)
                else:
                    assert _answer(one) == _answer(two), where
                views |= {h.view for h in one.hits}
                totals.add(one.total)
    assert views == {"content", "masked", "listed"} and len(totals) > 5


def _docs(n: int) -> list[SearchDocument]:
    texts = ["因病致贫，因病因病", "低保兜底 因病", "产业扶持 光伏 光伏 光伏 光伏", "因病",
             "教育资助 雨露计划 因学", "因病 " + "扶贫手册 " * 30]
    return [SearchDocument(f"item-{i:03d}", f"Q-{i:04d}", f"文件{i}", texts[i % len(texts)],
                           {"year": 2014 + i % 5}) for i in range(n)]


def test_relevance_is_fts5_bm25(home) -> None:
    """For a two-character word the score is FTS5's own bm25() of the same expression."""
    catalogue = Catalogue.open(home)
    if not catalogue.is_sqlite:
        pytest.skip("FTS5 and the term postings are SQLite's")
    with catalogue.session() as s:
        for n in range(12):   # many small segments: merges happen on the way
            catalogue.index_documents(s, f"{n:036d}", _docs(7))
    engine = EmbeddedSearch(catalogue)
    for word in ("因病", "光伏", "扶贫"):
        result = engine.search(parse_query(word), per_page=100)
        expression = f'((grams:"{word}") OR words:"{word}")'
        with catalogue.engine.connect() as connection:
            expected = connection.execute(text(
                "SELECT d.aip_uuid, d.item_key, bm25(search_fts, 1.0, 3.0) FROM search_fts "
                "JOIN search_docs d ON d.id = search_fts.rowid WHERE search_fts MATCH :e "
                "ORDER BY bm25(search_fts, 1.0, 3.0), d.id"), {"e": expression}).all()
        assert result.total == len(expected) > 0
        assert [(h.aip_uuid, h.item_key) for h in result.hits] == [tuple(r[:2]) for r in expected]
        assert [h.score for h in result.hits] == pytest.approx([r[2] for r in expected], rel=1e-9)
    # the document that says 光伏 four times in few words comes first
    assert engine.search(parse_query("光伏")).hits[0].snippet.count("<mark>") == 4


def test_postings_follow_writes_deletes_and_merges(home) -> None:
    """Random batches written, documents deleted and rewritten (as the public view is when a
    review decision changes it): after every step each token's postings and every document's
    length are those of the documents as they now stand, and merges keep segments few."""
    import random
    from collections import Counter

    from access.search.columns import _Part
    from storage.index import postings as search_postings

    rng = random.Random(7)
    vocab = ["因病", "低保", "脱贫", "光伏", "2016", "年"]
    catalogue = Catalogue.open(home)
    if not catalogue.is_sqlite:
        pytest.skip("the term postings are SQLite's")
    now: dict[int, list[str]] = {}
    reader = _Part("public")
    next_id = 1
    for step in range(150):
        with catalogue.engine.begin() as connection:
            action = rng.random()
            if action < 0.6 or not now:
                batch = []
                for _ in range(rng.randint(1, 12)):
                    doc = rng.choice(list(now)) if now and rng.random() < 0.3 else next_id
                    next_id = max(next_id, doc + 1)
                    tokens = [rng.choice(vocab) for _ in range(rng.randint(0, 9))]
                    batch = [b for b in batch if b[0] != doc] + [(doc, tokens)]
                search_postings.write_segment(connection, "public",
                                              [(d, " ".join(t), "") for d, t in batch])
                now.update(dict(batch))
            elif action < 0.95:
                gone = rng.sample(sorted(now), min(len(now), rng.randint(1, 4)))
                search_postings.delete_documents(connection, "public", gone)
                for doc in gone:
                    del now[doc]
            else:
                search_postings.clear_part(connection, "public")
                now.clear()
            reader.refresh(connection)
            for token in vocab:
                docs, tfs = reader.postings(connection, "g:" + token)
                expected = sorted((d, Counter(t)[token]) for d, t in now.items() if token in t)
                assert list(zip(docs.tolist(), tfs.astype(int).tolist())) == expected, step
            live = np.flatnonzero((reader.latest > 0) & (reader.lengths[:, 0] >= 0))
            assert live.tolist() == sorted(now), step
            assert all(reader.lengths[d, 0] == len(now[d]) for d in now), step
            segments = connection.execute(text(
                "SELECT count(*) FROM search_segments WHERE part = 'public'")).scalar()
            assert segments < 4 * search_postings.FANOUT, step


def test_scoped_searches_on_postgresql_answer_as_on_sqlite(holding, pg_cluster,
                                                           tmp_path) -> None:
    """The same transfer and review decisions on a PostgreSQL catalogue: every reader finds
    the same records, in the same views, with the same counts as on SQLite."""
    import uuid
    from datetime import date

    from holdings import HOUSEHOLDS

    from access.services import AccessService
    from ingest.pipeline import ingest
    from policies import load_settings

    database = f"scoped_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "pg-home"
    folder.mkdir()
    settings = load_settings(folder, environ={
        "DANGAN_CATALOGUE_URL": pg_cluster.create_database(database)})
    opened: list[Catalogue] = []
    try:
        result = ingest(holding.transfer, settings)
        assert result.status == "accepted", result.failures
        from ingest.textjobs import wait_for_text   # OCR'd as the SQLite holding was

        wait_for_text(settings, result.text_jobs)
        on_pg = {a["archival_code"] or "general": a["uuid"] for a in result.aips}
        service = AccessService(settings)
        opened.append(service.catalogue)
        archivist = Reader("archivist", "fixture")
        service.record_decision(archivist, on_pg["general"], None, open_date=date(2020, 12, 31),
                                control="开放", basis="县级扶贫政策文件已主动公开，提前开放")
        service.record_decision(archivist, on_pg[HOUSEHOLDS[1].code], None,
                                open_date=date(2020, 1, 1), control="开放",
                                basis="户主书面同意公开（测试用决定）")
        rules = load_rules(settings)
        pg_catalogue = Catalogue.open(settings)
        opened.append(pg_catalogue)
        assert not pg_catalogue.is_sqlite
        AccessIndex(pg_catalogue, rules).sync()
        sqlite_catalogue = Catalogue.open(holding.settings)
        AccessIndex(sqlite_catalogue, load_rules(holding.settings)).sync()
        engines = (EmbeddedSearch(sqlite_catalogue), EmbeddedSearch(pg_catalogue))
        restricted = (holding.restricted, on_pg[HOUSEHOLDS[0].code])
        views = set()
        for make in (lambda u: Reader("public"), lambda u: Reader("researcher", "r"),
                     lambda u: Reader("researcher", "g", frozenset({(u, None)})),
                     lambda u: Reader("auditor", "a"), lambda u: Reader("archivist", "x")):
            for text_ in QUERIES:
                answers = []
                for engine, aip in zip(engines, restricted):
                    query = parse_query(text_)
                    query.scope = scope_for(make(aip), rules)
                    found = engine.search(query, per_page=200, sort="code", facet_limit=50)
                    answers.append((found.total, found.facets,   # AIP ids differ
                                    [(h.archival_code, h.item_key, h.view, h.title,
                                      UUID.sub("<aip>", h.snippet), h.facets)
                                     for h in found.hits]))
                    views |= {h.view for h in found.hits}
                assert answers[0] == answers[1], (make(None).role, text_)
        assert views == {"content", "masked", "listed"}
    finally:
        for catalogue in opened:
            catalogue.engine.dispose()
        pg_cluster.drop_database(database)


def test_a_deletion_by_another_process_reaches_cached_answers(home) -> None:
    """The portal keeps recent answers; a record another process removes from the index
    leaves them at the next search (SQLite and PostgreSQL alike)."""
    from sqlalchemy import delete

    from access.services import AccessService
    from storage.catalogue.models import SearchDoc
    from storage.index import delete_tokens

    catalogue = Catalogue.open(home)
    aips = [f"{n:036d}" for n in range(3)]
    with catalogue.session() as s:
        for aip in aips:
            catalogue.index_documents(s, aip, _docs(6))
    portal, other = AccessService(home), AccessService(home)
    assert portal._cache_size > 0
    archivist = Reader("archivist", "a")
    before = portal.search(archivist, "因病")
    assert aips[0] in {h.aip_uuid for h in before.hits}
    assert portal.search(archivist, "因病") is before            # answered from the cache
    with other.catalogue.session() as s:                          # as `dangan delete` does
        gone = list(s.scalars(select(SearchDoc.id).where(SearchDoc.aip_uuid == aips[0])))
        delete_tokens(s, gone)
        s.execute(delete(SearchDoc).where(SearchDoc.aip_uuid == aips[0]))
    after = portal.search(archivist, "因病")
    assert aips[0] not in {h.aip_uuid for h in after.hits}
    assert after.total == before.total - sum(1 for d in _docs(6) if "因病" in d.text)
