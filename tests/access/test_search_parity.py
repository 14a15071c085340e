"""One behaviour, every engine: the same queries answered the same way by the embedded engine
(on SQLite and on PostgreSQL), by Elasticsearch through osmem-server (an emulator) and, when
``DANGAN_TEST_ES_URL`` names one, by a real Elasticsearch cluster.

Each engine is checked against a brute-force reference search (tests/access/search_corpus.py):
the same hits in the same order when sorted by 档号 or by date, the same set of hits when sorted
by relevance (scores differ between engines), the same totals, facet counts and snippets.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from es_servers import ES_URL_ENV, TARGETS  # noqa: E402
from search_corpus import CorpusDoc, build_corpus, reference_search  # noqa: E402

from access.rules import mask_numbers  # noqa: E402
from access.search import parse_query  # noqa: E402
from access.search.base import SearchEngine, open_engine  # noqa: E402
from access.search.embedded import highlight  # noqa: E402
from access.search.indexer import drain  # noqa: E402
from policies import load_settings  # noqa: E402
from storage.catalogue import Catalogue  # noqa: E402

ENGINES = ["embedded-sqlite", "embedded-postgresql"] + [f"elasticsearch-{t}" for t in TARGETS]
QUERIES = [
    "因病", "低保", "脱贫", "因病致贫", "危房 改造", '"易地扶贫搬迁"', "因病 -因残", "2016年",
    "2016年度", "3.5", "abc", "ＡＢＣ", "poverty", "Poverty alleviation", "年", "王文全",
    "category:02", "year:2016 因病", "cause:因学", "county:630121 低保", "retention:Y -脱贫",
    "县:630122", "不存在的词", "因病 year:2015 year:2016", "村委会", "搬迁 收入",
    "format:fmt/43 扶贫", "level:户卷", "致贫原因:缺技术 缺劳力", "!!!", "Q001",
]
FACET_LIMIT = 50


@dataclass
class Loaded:
    """An engine with the corpus loaded."""

    name: str
    engine: SearchEngine
    corpus: list[CorpusDoc]


def _load(settings, name: str) -> Loaded:
    catalogue = Catalogue.open(settings)
    corpus: list[CorpusDoc] = []
    with catalogue.session() as s:
        for aip, docs in build_corpus():
            catalogue.index_documents(s, aip, docs)
    with catalogue.session() as s:
        ids = s.execute(catalogue_ids_sql()).all()
    by_key = {(a, i): seq for seq, a, i in ids}
    for aip, docs in build_corpus():
        corpus += [CorpusDoc(by_key[(aip, d.item_key)], aip, d) for d in docs]
    engine = open_engine(settings, catalogue)
    if engine.external:
        result = drain(settings, catalogue=catalogue, engine=engine)
        assert result.failed == 0
        engine.refresh()  # type: ignore[attr-defined]
    return Loaded(name, engine, corpus)


def catalogue_ids_sql():
    from sqlalchemy import text

    return text("SELECT id, aip_uuid, item_key FROM search_docs ORDER BY id")


@pytest.fixture(scope="module", params=ENGINES)
def loaded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Loaded]:
    """The corpus loaded into one engine (once per module)."""
    name = request.param
    folder = tmp_path_factory.mktemp(name)
    environ = {"DANGAN_HOME": str(folder)}
    cleanup = []
    if name == "embedded-postgresql":
        cluster = request.getfixturevalue("pg_cluster")
        database = f"parity_{uuid.uuid4().hex[:8]}"
        environ["DANGAN_CATALOGUE_URL"] = cluster.create_database(database)
        cleanup.append(lambda: cluster.drop_database(database))
    elif name == "elasticsearch-osmem":
        clone = request.getfixturevalue("osmem").clone()
        environ.update({"DANGAN_SEARCH_ENGINE": "elasticsearch",
                        "DANGAN_SEARCH_ELASTICSEARCH_URL": clone.url})
        cleanup.append(clone.close)
    elif name == "elasticsearch-cluster":
        import os

        from es_servers import _cluster_cleanup

        alias = f"dangan-parity-{uuid.uuid4().hex[:8]}"
        environ.update({"DANGAN_SEARCH_ENGINE": "elasticsearch",
                        "DANGAN_SEARCH_ELASTICSEARCH_URL": os.environ[ES_URL_ENV],
                        "DANGAN_SEARCH_ELASTICSEARCH_INDEX": alias})
        cleanup.append(lambda: _cluster_cleanup(os.environ[ES_URL_ENV], alias))
    loaded = _load(load_settings(folder, environ=environ), name)
    yield loaded
    loaded.engine.catalogue.engine.dispose()  # type: ignore[attr-defined]
    for step in cleanup:
        step()


def _keys(result) -> list[tuple[str, str | None]]:
    return [(h.aip_uuid, h.item_key) for h in result.hits]


@pytest.mark.parametrize("text", QUERIES)
def test_engine_answers_as_the_reference(loaded: Loaded, text: str) -> None:
    query = parse_query(text)
    for sort in ("code", "date"):
        expected, facets = reference_search(loaded.corpus, query, sort, FACET_LIMIT)
        result = loaded.engine.search(query, per_page=1000, sort=sort, facet_limit=FACET_LIMIT)
        assert result.total == len(expected), (loaded.name, text, sort)
        assert _keys(result) == expected, (loaded.name, text, sort)
        assert result.facets == facets, (loaded.name, text, sort)
    relevance = loaded.engine.search(query, per_page=1000, facet_limit=FACET_LIMIT)
    assert sorted(_keys(relevance), key=str) == sorted(expected, key=str)


def test_the_reference_is_not_trivial(loaded: Loaded) -> None:
    """The queries above exercise empty, small and large answers and every feature."""
    totals = {t: len(reference_search(loaded.corpus, parse_query(t), "code", 5)[0])
              for t in QUERIES}
    assert totals["不存在的词"] == 0 and totals["!!!"] == len(loaded.corpus)
    assert 0 < totals["因病"] < len(loaded.corpus)
    assert totals["因病 -因残"] < totals["因病"]
    assert totals["年"] < totals["2016年度"] or totals["年"] == 0
    assert totals["3.5"] > 0 and totals["ＡＢＣ"] == totals["abc"] > 0


def test_paging_gives_the_same_pages(loaded: Loaded) -> None:
    query = parse_query("扶贫")
    expected, _ = reference_search(loaded.corpus, query, "code", 5)
    pages = [loaded.engine.search(query, page=p, per_page=7, sort="code") for p in (1, 2, 3)]
    assert all(p.total == len(expected) for p in pages)
    assert [k for p in pages for k in _keys(p)] == expected[:21]


def test_snippets_mark_the_query_words(loaded: Loaded) -> None:
    query = parse_query("因病 低保")
    by_key = {d.key: d.doc for d in loaded.corpus}
    result = loaded.engine.search(query, per_page=50, sort="code")
    assert result.hits
    for hit in result.hits:
        doc = by_key[(hit.aip_uuid, hit.item_key)]
        assert hit.snippet == highlight(mask_numbers(f"{doc.title}\n{doc.text}"), query.terms)
        assert "<mark>因病</mark>" in hit.snippet or "<mark>低保</mark>" in hit.snippet
        assert hit.view == "content" and hit.title == doc.title


def test_facet_links_filter_like_the_query_syntax(loaded: Loaded) -> None:
    typed = loaded.engine.search(parse_query("扶贫 year:2016 cause:因病"), per_page=1000,
                                 sort="code")
    linked = loaded.engine.search(parse_query("扶贫", {"year": ["2016"],
                                                      "poverty_causes": ["因病"]}),
                                  per_page=1000, sort="code")
    assert typed.total == linked.total > 0
    assert _keys(typed) == _keys(linked)


def test_es_cluster_is_exercised_only_when_configured() -> None:
    """Say plainly in the test report whether a real cluster took part."""
    import os

    if not os.environ.get(ES_URL_ENV):
        pytest.skip(f"no real Elasticsearch: set {ES_URL_ENV} to run the suite against one")
    assert "elasticsearch-cluster" in ENGINES


# -- the access scope: what each reader may find -------------------------------------------

SCOPED_QUERIES = ["因病", "扶贫", "贫困户", "category:02", "光伏", "合作社 分红", "year:2016"]


def test_access_scopes_answer_the_same_on_elasticsearch(holding, osmem) -> None:
    """Every reader (anonymous, researcher, researcher with a grant, auditor, archivist) finds
    the same records, in the same view, with the same counts, on both engines."""
    from access.rules import Reader, load_rules, scope_for
    from access.search.elastic import ElasticSearch
    from access.search_access import AccessIndex

    rules = load_rules(holding.settings)
    catalogue = Catalogue.open(holding.settings)
    AccessIndex(catalogue, rules).sync()
    embedded = open_engine(holding.settings, catalogue)
    clone = osmem.clone()
    try:
        es_settings = load_settings(holding.settings.home, environ={
            "DANGAN_SEARCH_ENGINE": "elasticsearch",
            "DANGAN_SEARCH_ELASTICSEARCH_URL": clone.url})
        elastic = ElasticSearch(es_settings, catalogue)
        assert elastic.index_aips(holding.aips()) == {}
        elastic.refresh()
        readers = [Reader("public"), Reader("researcher", "r"),
                   Reader("researcher", "g", frozenset({(holding.restricted, None)})),
                   Reader("auditor", "a"), Reader("archivist", "x")]
        views = set()
        for reader in readers:
            for text in SCOPED_QUERIES:
                query = parse_query(text)
                query.scope = scope_for(reader, rules)
                one = embedded.search(query, per_page=200, sort="code", facet_limit=50)
                two = elastic.search(query, per_page=200, sort="code", facet_limit=50)
                where = (reader.role, reader.grants, text)
                assert one.total == two.total, where
                assert [(h.aip_uuid, h.item_key, h.view, h.title, h.snippet, h.facets)
                        for h in one.hits] == [
                        (h.aip_uuid, h.item_key, h.view, h.title, h.snippet, h.facets)
                        for h in two.hits], where
                assert one.facets == two.facets, where
                views |= {h.view for h in one.hits}
        assert views == {"content", "masked", "listed"}   # every view was exercised
    finally:
        clone.close()


def test_the_embedded_engine_sees_documents_added_and_deleted(home) -> None:
    """The in-memory facet columns follow the catalogue: new documents at once, deleted ones
    (an AIP removed) from the next search on."""
    from sqlalchemy import text

    from storage.catalogue import SearchDocument

    catalogue = Catalogue.open(home)
    engine = open_engine(home, catalogue)
    assert engine.search(parse_query("year:2016")).total == 0
    with catalogue.session() as s:
        for aip, year in (("a" * 36, 2016), ("b" * 36, 2017)):
            catalogue.index_documents(s, aip, [SearchDocument("item-001", None, "因病致贫户",
                                                              "因病", {"year": year})])
    assert engine.search(parse_query("因病")).facets["year"] == [("2016", 1), ("2017", 1)]
    with catalogue.engine.begin() as connection:
        connection.execute(text("DELETE FROM search_docs WHERE aip_uuid = :a"), {"a": "a" * 36})
    assert engine.search(parse_query("year:2016")).total == 0
    assert engine.search(parse_query("year:2017")).total == 1
