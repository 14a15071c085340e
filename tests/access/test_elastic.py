"""The Elasticsearch engine: index template and analysis, the indexing outbox, bulk retries,
versioned indices behind an alias and the resumable reindex — against osmem-server (an
emulator) and, with ``DANGAN_TEST_ES_URL``, a real cluster."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pytest
from elastic_transport import ApiResponseMeta, HttpHeaders
from elastic_transport._node._base import NodeApiResponse
from sqlalchemy import text

from storage.index import postings as search_postings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_corpus import build_corpus  # noqa: E402

from access.search import parse_query  # noqa: E402
from access.search.base import open_engine  # noqa: E402
from access.search.elastic import (  # noqa: E402
    ElasticSearch,
    PlainJsonNode,
    index_template,
    make_client,
)
from access.search.indexer import drain  # noqa: E402
from policies import load_settings  # noqa: E402
from storage.index import outbox  # noqa: E402
from storage.catalogue import Catalogue  # noqa: E402
from storage.index import index_tokens  # noqa: E402


@pytest.fixture
def es_home(home, es_target, monkeypatch):
    """The test home with search on the server under test."""
    for name, value in es_target.environ().items():
        monkeypatch.setenv(name, value)
    return load_settings(home.home)


def _load(settings, aips: int = 12):
    catalogue = Catalogue.open(settings)
    corpus = build_corpus(aips)
    with catalogue.session() as s:
        for aip, docs in corpus:
            catalogue.index_documents(s, aip, docs)
    return catalogue, corpus


def _doc_count(catalogue: Catalogue) -> int:
    with catalogue.engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM search_docs")).scalar())


def test_template_has_cjk_bigrams_keyword_facets_and_plugin_sub_fields() -> None:
    plain = index_template("dangan-search", [])
    settings = plain["template"]["settings"]["analysis"]
    assert settings["analyzer"]["dangan_cjk"]["filter"] == ["cjk_width", "lowercase",
                                                            "cjk_bigram"]
    props = plain["template"]["mappings"]["properties"]
    assert props["facets"]["properties"]["poverty_causes"] == {"type": "keyword"}
    assert "fields" not in props["text"]
    smartcn = index_template("dangan-search", ["analysis-smartcn", "repository-s3"])
    assert smartcn["template"]["mappings"]["properties"]["text"]["fields"] == {
        "smartcn": {"type": "text", "analyzer": "smartcn"}}
    ik = index_template("dangan-search", ["analysis-ik"])["template"]["mappings"]
    assert ik["properties"]["title"]["fields"]["ik"]["analyzer"] == "ik_max_word"
    assert ik["_meta"]["dangan"]["word_fields"] == ["ik"]


def test_plugins_are_detected_not_assumed(es_home) -> None:
    catalogue, _ = _load(es_home, 2)
    engine = open_engine(es_home, catalogue)
    engine.ensure_index()
    status = engine.status()
    detected = {"analysis-smartcn", "analysis-ik"} & set(status["analysis"]["plugins"])
    assert sorted(status["analysis"]["word_fields"]) == sorted(
        {"analysis-smartcn": "smartcn", "analysis-ik": "ik"}[p] for p in detected)


def test_the_analyzer_cuts_text_as_the_embedded_engine_does(es_home) -> None:
    catalogue, _ = _load(es_home, 1)
    engine = open_engine(es_home, catalogue)
    index = engine.ensure_index()
    for sample in ["因病致贫 2016年度", "种植3.5亩核桃", "ＡＢＣ合作社，Poverty-Alleviation",
                   "第一 年 总结", "Q001-JF·02·630121100201-0001", "先诊疗后付费/一站式结算"]:
        tokens = engine.client.indices.analyze(index=index, analyzer="dangan_cjk", text=sample)
        assert [t["token"] for t in tokens["tokens"]] == index_tokens(sample)[0].split(), sample


def test_the_outbox_is_written_with_the_aip_and_drained(es_home, cli, sample) -> None:
    ingested = cli("ingest", sample, "--json")
    assert ingested.code == 0, ingested.err
    aips = [a["uuid"] for a in json.loads(ingested.out)["aips"]]
    catalogue = Catalogue.open(es_home)
    with catalogue.session() as s:
        lag = outbox.outbox_status(s)
    assert lag.pending == len(aips) and lag.done == 0
    status = cli("index", "status")
    assert f"{len(aips)} pending" in status.out and status.code == 0
    assert cli("search", "因病").out.startswith("0 hits")  # stored, owed, not yet searchable
    drained = cli("index", "drain")
    assert drained.code == 0 and f"{len(aips)} AIPs indexed" in drained.out
    open_engine(es_home, catalogue).refresh()
    found = json.loads(cli("search", "因病", "--json").out)
    assert found["total"] > 0 and {h["aip"] for h in found["hits"]} <= set(aips)
    with catalogue.session() as s:
        lag = outbox.outbox_status(s)
    assert (lag.pending, lag.done, lag.lag_seconds) == (0, len(aips), 0.0)


def test_an_unreachable_engine_keeps_failures_and_they_are_retried(es_home, cli, monkeypatch):
    good_url = es_home.get("search", "elasticsearch_url")
    catalogue, corpus = _load(es_home, 3)
    monkeypatch.setenv("DANGAN_SEARCH_ELASTICSEARCH_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("DANGAN_SEARCH_ELASTICSEARCH_RETRIES", "0")
    monkeypatch.setenv("DANGAN_SEARCH_OUTBOX_MAX_ATTEMPTS", "2")
    broken = load_settings(es_home.home)
    for _ in range(2):
        result = drain(broken, catalogue=catalogue, engine=open_engine(broken, catalogue))
        assert result.failed == len(corpus) and result.indexed == 0
        with catalogue.session() as s:
            s.execute(text("UPDATE index_outbox SET next_attempt_at = created_at"))
    status = cli("index", "status")
    assert status.code == 1, status.out
    assert f"{len(corpus)} failed" in status.out and "127.0.0.1:9" in status.out
    assert cli("index", "retry").out.startswith(f"{len(corpus)} entries")
    monkeypatch.setenv("DANGAN_SEARCH_ELASTICSEARCH_URL", good_url)
    healed = load_settings(es_home.home)
    result = drain(healed, catalogue=catalogue, engine=open_engine(healed, catalogue))
    assert (result.indexed, result.failed) == (len(corpus), 0)
    assert cli("index", "status").code == 0


class _Busy(PlainJsonNode):
    """Answers the first two bulk requests with 429 (a cluster under pressure)."""

    refusals = 0

    def perform_request(self, method, target, body=None, headers=None, **kwargs):
        if "_bulk" in target and _Busy.refusals < 2:
            _Busy.refusals += 1
            meta = ApiResponseMeta(429, "1.1", HttpHeaders({
                "content-type": "application/json", "x-elastic-product": "Elasticsearch"}),
                0.0, self.config)
            return NodeApiResponse(meta, json.dumps({
                "error": {"type": "es_rejected_execution_exception", "reason": "queue full"},
                "status": 429}).encode())
        return super().perform_request(method, target, body=body, headers=headers, **kwargs)


def test_bulk_requests_refused_with_429_are_retried(es_home) -> None:
    catalogue, corpus = _load(es_home, 4)
    client = make_client(es_home.get("search", "elasticsearch_url"), node_class=_Busy)
    engine = ElasticSearch(es_home, catalogue, client=client)
    assert engine.index_aips([aip for aip, _ in corpus]) == {}
    engine.refresh()
    assert _Busy.refusals == 2
    assert engine.client.count(index=engine.alias)["count"] == _doc_count(catalogue)


def test_reindex_swaps_the_alias_without_downtime(es_home) -> None:
    catalogue, _ = _load(es_home, 30)
    engine = open_engine(es_home, catalogue)
    drain(es_home, catalogue=catalogue, engine=engine)
    engine.refresh()
    first = engine.current_index()
    query = parse_query("扶贫")
    expected = engine.search(query).total
    assert expected > 0
    seen, stop = [], threading.Event()

    def keep_searching() -> None:
        while not stop.is_set():
            seen.append(engine.search(query).total)

    searcher = threading.Thread(target=keep_searching)
    searcher.start()
    try:
        summary = engine.reindex(batch=10, progress=lambda done, total: time.sleep(0.05))
    finally:
        stop.set()
        searcher.join()
    assert summary["swapped"] and summary["documents"] == _doc_count(catalogue)
    assert engine.current_index() == summary["target"] != first
    assert engine.versions() == [summary["target"]]          # the old version is gone
    assert len(seen) > 3 and set(seen) == {expected}         # every search answered in full
    assert engine.search(query).total == expected


def test_an_interrupted_reindex_resumes_and_keeps_writes_made_meanwhile(es_home) -> None:
    catalogue, _ = _load(es_home, 20)
    engine = open_engine(es_home, catalogue)
    drain(es_home, catalogue=catalogue, engine=engine)
    partial = engine.reindex(batch=10, max_batches=2)
    assert not partial["complete"] and partial["documents"] == 20
    with catalogue.session() as s:
        state = outbox.get_state(s, "reindex")
    assert state["target"] == partial["target"] and state["done"] == 20
    late = build_corpus(25, seed=99)[-1]                     # an AIP ingested meanwhile
    with catalogue.session() as s:
        catalogue.index_documents(s, *late)
    drain(es_home, catalogue=catalogue, engine=engine)      # goes to both versions
    resumed = engine.reindex(batch=10)
    assert resumed["resumed_from"] == state["last_seq"] and resumed["swapped"]
    assert resumed["documents"] == _doc_count(catalogue)
    engine.refresh()
    hits = engine.search(parse_query(late[1][1].title), per_page=100)
    assert late[0] in {h.aip_uuid for h in hits.hits}
    assert engine.client.count(index=engine.alias)["count"] == _doc_count(catalogue)
    with catalogue.session() as s:
        assert outbox.get_state(s, "reindex") is None


def test_reindex_command_and_status(es_home, cli) -> None:
    catalogue, _ = _load(es_home, 5)
    assert cli("index", "drain").code == 0
    done = cli("reindex")
    assert done.code == 0, done.err
    assert "-v2:" in done.out and "previous: dangan-search" in done.out.replace(
        es_home.get("search", "elasticsearch_index"), "dangan-search")
    status = cli("index", "status", "--json")
    info = json.loads(status.out)["engine"]
    assert info["index"].endswith("-v2") and info["documents"] == _doc_count(catalogue)
    assert info["analysis"]["cjk"] is True


def test_embedded_reindex_rewrites_its_tokens(home, cli) -> None:
    catalogue, _ = _load(home, 4)
    before = json.loads(cli("search", "因病", "--json").out)["total"]
    with catalogue.engine.begin() as connection:
        if catalogue.is_sqlite:
            connection.execute(text("DELETE FROM search_fts"))
            search_postings.clear_part(connection, "content")
        else:
            connection.execute(text("DELETE FROM search_tokens"))
    assert json.loads(cli("search", "因病", "--json").out)["total"] == 0
    assert cli("reindex").out.startswith("embedded index rebuilt")
    assert json.loads(cli("search", "因病", "--json").out)["total"] == before > 0
