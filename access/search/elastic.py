"""The Elasticsearch engine (servers 8.x and 9.x) through the official ``elasticsearch`` client.

Index layout. Documents live in versioned indices ``<alias>-v<N>`` behind the alias
(``[search] elasticsearch_index``, default ``dangan-search``); searches and writes go through
the alias. ``dangan reindex`` builds the next version from the catalogue while the current one
keeps serving, checkpoints its progress (so an interrupted reindex resumes), catches up with
what was indexed meanwhile and swaps the alias in one atomic ``_aliases`` call.

Analysis. An index template gives every version the ``dangan_cjk`` analyzer: the built-in
``cjk_width`` + ``lowercase`` + ``cjk_bigram`` chain behind a character filter that cuts text
into the same runs as :mod:`storage.index.textseg` (CJK characters, Latin letters and digits), so a
word is the same phrase of bigrams here as in the embedded engine. When the cluster has the
``analysis-smartcn`` or ``analysis-ik`` plugin (asked of the cluster, never assumed), ``title``
and ``text`` get a word-segmented sub-field used to rank whole-word matches higher, as the
embedded engine's ``words`` column does. Facets are keyword fields.

Matching, filters, facets, sorting, snippets and the access scope (:class:`access.rules.Scope`)
follow the embedded engine exactly; only relevance scores differ.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

from elastic_transport import TransportError, Urllib3HttpNode
from elasticsearch import ApiError, Elasticsearch, NotFoundError
from elasticsearch.helpers import streaming_bulk
from sqlalchemy import func, inspect, select, text

from access.search.base import Hit, SearchEngine, SearchError, SearchResult
from access.search.embedded import masked_snippet
from access.search.facets import day_key, facet_list
from access.search.query import FACET_FIELDS, Query
from policies import ConfigError, Settings
from storage.catalogue import models as m
from storage.index import outbox
from storage.catalogue import Catalogue
from storage.index import term_tokens

SCHEMA = 1
ANALYZER = "dangan_cjk"
#: everything that is not a CJK character, a Latin letter or a digit separates tokens, as in
#: storage.index.textseg (full-width letters and digits are kept for cjk_width to fold)
SEPARATORS = ("[^0-9A-Za-z\u00c0-\u024f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
              "\uff10-\uff19\uff21-\uff3a\uff41-\uff5a]")
WORD_PLUGINS = {"analysis-smartcn": ("smartcn", {"type": "text", "analyzer": "smartcn"}),
                "analysis-ik": ("ik", {"type": "text", "analyzer": "ik_max_word",
                                       "search_analyzer": "ik_smart"})}
MAX_WINDOW = 10_000
STATE = "reindex"
CATCH_UP_MARGIN = timedelta(minutes=5)
ProgressFn = Callable[[int, int], None]


class PlainJsonNode(Urllib3HttpNode):
    """A transport node that sends plain ``application/json`` and ``application/x-ndjson``.

    The client asks for ``application/vnd.elasticsearch+json; compatible-with=<its major>``,
    which a server of another major refuses; every 8.x and 9.x server (and OpenSearch-compatible
    servers) answers plain JSON with its own current API, which is all Dangan uses.
    """

    def perform_request(self, method: str, target: str, body: bytes | None = None,
                        headers: Any = None, **kwargs: Any) -> Any:
        if headers:
            headers = headers.copy()
            for name in ("accept", "content-type"):
                value = headers.get(name)
                if value and "compatible-with" in value:
                    headers[name] = ("application/x-ndjson" if "x-ndjson" in value
                                     else "application/json")
        return super().perform_request(method, target, body=body, headers=headers, **kwargs)


def make_client(url: str, *, timeout: float = 30, retries: int = 5,
                node_class: type = PlainJsonNode) -> Elasticsearch:
    """An Elasticsearch client that retries timeouts and 429/502/503/504 answers.

    Arguments:
        url: ``http(s)://[user:password@]host:port``.
    """
    return Elasticsearch(url, node_class=node_class, request_timeout=timeout,
                         max_retries=retries, retry_on_timeout=True,
                         retry_on_status=(429, 502, 503, 504))


@contextmanager
def map_errors(what: str) -> Iterator[None]:
    """Turn the client's errors into :class:`SearchError` (the original attached)."""
    try:
        yield
    except ApiError as exc:
        raise SearchError(f"elasticsearch: {what}: {exc.meta.status} {exc.message}") from exc
    except TransportError as exc:
        raise SearchError(f"elasticsearch: {what}: {exc}") from exc


# -- index template ------------------------------------------------------------------------

def _facet_properties() -> dict[str, Any]:
    return {"dynamic": False,
            "properties": {name: {"type": "keyword"} for name in FACET_FIELDS}}


def index_template(alias: str, plugins: Iterable[str], *, shards: int = 1,
                   replicas: int = 0) -> dict[str, Any]:
    """The composable index template of the versioned indices behind ``alias``.

    Arguments:
        alias: the alias name; the template matches ``<alias>-v*``.
        plugins: the cluster's installed plugin names (e.g. ``analysis-smartcn``).

    Returns:
        The body of ``PUT _index_template/<alias>``.
    """
    words = [WORD_PLUGINS[p] for p in sorted(set(plugins)) if p in WORD_PLUGINS]
    sub_fields = {name: dict(spec) for name, spec in words}
    searched = {"type": "text", "analyzer": ANALYZER, **({"fields": sub_fields} if words else {})}
    return {
        "index_patterns": [f"{alias}-v*"],
        "priority": 200,
        "_meta": {"dangan": {"schema": SCHEMA}},
        "template": {
            "settings": {
                "number_of_shards": shards, "number_of_replicas": replicas,
                "analysis": {
                    "char_filter": {"dangan_runs": {"type": "pattern_replace",
                                                    "pattern": SEPARATORS, "replacement": " "}},
                    "analyzer": {ANALYZER: {"type": "custom", "char_filter": ["dangan_runs"],
                                            "tokenizer": "standard",
                                            "filter": ["cjk_width", "lowercase", "cjk_bigram"]}},
                },
            },
            "mappings": {
                "dynamic": "strict",
                "_meta": {"dangan": {"schema": SCHEMA,
                                     "word_fields": [name for name, _ in words]}},
                "properties": {
                    "aip_uuid": {"type": "keyword"},
                    "item_key": {"type": "keyword"},
                    "archival_code": {"type": "keyword",
                                      "copy_to": ["content", "public_content"]},
                    "seq": {"type": "long"},
                    "year": {"type": "integer"},
                    "title": {**searched, "copy_to": "content"},
                    "text": {**searched, "copy_to": "content"},
                    "content": {"type": "text", "analyzer": ANALYZER},
                    "facets": _facet_properties(),
                    "control": {"type": "keyword"},
                    "open_date": {"type": "keyword"},
                    "pii_level": {"type": "keyword"},
                    "public_title": {"type": "text", "analyzer": ANALYZER,
                                     "copy_to": "public_content"},
                    "public_text": {"type": "text", "analyzer": ANALYZER,
                                    "copy_to": "public_content"},
                    "public_content": {"type": "text", "analyzer": ANALYZER},
                    "public_facets": _facet_properties(),
                },
            },
        },
    }


def document_id(aip_uuid: str, item_key: str | None) -> str:
    """The engine's id of a search document: stable across reindexes and rebuilds."""
    return f"{aip_uuid}/{item_key or '-'}"


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else (value or {})


def es_document(row: Any) -> dict[str, Any]:
    """The Elasticsearch source of one catalogue search document (with its access view)."""
    facets = _json(row["facets"])
    day = day_key(facets)
    return {
        "aip_uuid": row["aip_uuid"], "item_key": row["item_key"],
        "archival_code": row["archival_code"], "seq": row["id"],
        # the 年度 order's key, YYYYMMDD (YYYY0000: the year only); indexes built before
        # it held the year alone: `dangan reindex` brings them to this order
        "year": day or None,
        "title": row["title"], "text": row["text"], "facets": facets,
        "control": row.get("control"), "open_date": row.get("open_date"),
        "pii_level": row.get("pii_level"), "public_title": row.get("public_title"),
        "public_text": row.get("public_text"),
        "public_facets": _json(row.get("public_facets")),
    }


# -- queries -------------------------------------------------------------------------------

def phrase_text(tokens: list[str]) -> str:
    """The text whose analysis is this phrase of tokens (bigrams overlap by one character).

    >>> phrase_text(["因病", "病致", "致贫"])
    '因病致贫'
    """
    return tokens[0] + "".join(t[-1] for t in tokens[1:])


def text_query(terms: list[str], excluded: list[str], field: str) -> dict[str, Any] | None:
    """Every term's phrases on ``field`` (AND), minus excluded phrases; None without terms.

    Mirrors the embedded engine: a term is matched as each of its runs (a CJK run is a phrase
    of bigrams), exclusions apply only when there is something to match.
    """
    must = []
    for term in terms:
        phrases = [p for p in term_tokens(term) if p]
        if phrases:
            must.append({"bool": {"filter": [{"match_phrase": {field: phrase_text(p)}}
                                             for p in phrases]}})
    if not must:
        return None
    must_not = [{"match_phrase": {field: phrase_text(p)}}
                for term in excluded for p in term_tokens(term) if p]
    return {"bool": {"must": must, **({"must_not": must_not} if must_not else {})}}


def facet_filters(filters: dict[str, list[str]], prefix: str) -> list[dict[str, Any]]:
    """One ``terms`` filter per facet field (values OR-ed, fields AND-ed)."""
    return [{"terms": {f"{prefix}.{name}": [str(v) for v in values]}}
            for name, values in sorted(filters.items()) if name in FACET_FIELDS and values]


def _match_all() -> dict[str, Any]:
    return {"match_all": {}}


def _match_none() -> dict[str, Any]:
    return {"match_none": {}}


def _open(today: str) -> dict[str, Any]:
    return {"bool": {"filter": [{"term": {"control": "开放"}},
                                {"range": {"open_date": {"lte": today}}}]}}


def content_visible(scope: Any) -> dict[str, Any]:
    """Scope.content_visible as a query: staff, a granted record, or open without PII (and,
    as in the embedded engine, only documents that have an access view)."""
    if scope.everything:
        return _match_all()
    should = []
    for aip, item in sorted(scope.grants, key=lambda g: (g[0], g[1] or "")):
        if item is None:
            should.append({"term": {"aip_uuid": aip}})
        else:
            should.append({"bool": {"filter": [{"term": {"aip_uuid": aip}},
                                               {"term": {"item_key": item}}]}})
    if scope.see_open:
        should.append({"bool": {"filter": [_open(scope.today), {"term": {"pii_level": "none"}}]}})
    if not should:
        return _match_none()
    return {"bool": {"filter": [{"exists": {"field": "control"}}], "should": should,
                     "minimum_should_match": 1}}


def listed_visible(scope: Any) -> dict[str, Any]:
    """Scope.listed_visible as a query: an access view exists, and the record is open or the
    reader may list restricted records."""
    if scope.everything:
        return _match_all()
    if scope.list_restricted:
        return {"exists": {"field": "control"}}
    if scope.see_open:
        return _open(scope.today)
    return _match_none()


SORT = {
    "relevance": [{"_score": "desc"}, {"seq": "asc"}],
    "code": [{"archival_code": {"order": "asc", "missing": "_last"}}, {"seq": "asc"}],
    "date": [{"year": {"order": "desc", "missing": "_last"}}, {"seq": "asc"}],
}


class ElasticSearch(SearchEngine):
    """Search and indexing on an Elasticsearch cluster.

    Arguments:
        settings: ``[search]`` elasticsearch_url, elasticsearch_index (the alias), shards,
            replicas, timeout, bulk size and retries.
        catalogue: the catalogue the documents come from.
        client: an existing client (default: one made from the settings).

    Raises:
        ConfigError: no ``elasticsearch_url`` is configured.
    """

    external = True

    def __init__(self, settings: Settings, catalogue: Catalogue,
                 client: Elasticsearch | None = None) -> None:
        url = settings.get("search", "elasticsearch_url")
        if not url and client is None:
            raise ConfigError("[search] engine = \"elasticsearch\" needs elasticsearch_url "
                              "(or DANGAN_SEARCH_ELASTICSEARCH_URL)")
        self.settings = settings
        self.catalogue = catalogue
        self.alias = settings.get("search", "elasticsearch_index")
        self.bulk_docs = settings.int("search", "elasticsearch_bulk_docs")
        self.retries = settings.int("search", "elasticsearch_retries")
        timeout = settings.int("search", "elasticsearch_timeout")
        self.client = client or make_client(url, timeout=timeout, retries=self.retries)
        self._access = None
        self._word_fields: list[str] | None = None
        self.url = _redact(url) if url else "(client given)"

    def _errors(self, what: str) -> Any:
        return map_errors(f"{what} ({self.url})")

    # -- the cluster and its indices ---------------------------------------------------------
    def plugins(self) -> set[str]:
        """Names of the plugins installed on the cluster's nodes."""
        with self._errors("list plugins"):
            rows = self.client.cat.plugins(format="json")
        return {str(row.get("component", "")) for row in rows or []}

    def put_template(self) -> dict[str, Any]:
        """Install (or update) the index template from the cluster's detected plugins."""
        body = index_template(self.alias, self.plugins(),
                              shards=self.settings.int("search", "elasticsearch_shards"),
                              replicas=self.settings.int("search", "elasticsearch_replicas"))
        with self._errors("put index template"):
            self.client.indices.put_index_template(name=self.alias, **body)
        return body

    def current_index(self) -> str | None:
        """The index the alias points at, or None before the first index exists."""
        with self._errors("read alias"):
            if not self.client.indices.exists_alias(name=self.alias):
                return None
            names = sorted(self.client.indices.get_alias(name=self.alias).body)
        return names[-1] if names else None

    def versions(self) -> list[str]:
        """Every versioned index of the alias, oldest first."""
        with self._errors("list indices"):
            found = self.client.indices.get(index=f"{self.alias}-v*", ignore_unavailable=True,
                                            allow_no_indices=True).body
        return sorted(found, key=_version_of)

    def ensure_index(self) -> str:
        """The current index, created (from the template) with its alias if there is none."""
        current = self.current_index()
        if current is not None:
            return current
        self.put_template()
        name = self._next_name()
        with self._errors(f"create {name}"):
            self.client.indices.create(index=name)
            self.client.indices.update_aliases(actions=[{"add": {"index": name,
                                                                 "alias": self.alias}}])
        return name

    def _next_name(self) -> str:
        existing = [_version_of(n) for n in self.versions()]
        return f"{self.alias}-v{max(existing, default=0) + 1}"

    def word_fields(self) -> list[str]:
        """Word-segmented sub-fields of the current index (from its mapping's _meta)."""
        if self._word_fields is None:
            index = self.current_index()
            fields: list[str] = []
            if index:
                with self._errors("read mapping"):
                    mapping = self.client.indices.get_mapping(index=index).body
                meta = mapping.get(index, {}).get("mappings", {}).get("_meta", {})
                fields = list(meta.get("dangan", {}).get("word_fields", []))
            self._word_fields = fields
        return self._word_fields

    # -- documents from the catalogue ------------------------------------------------------
    def _sync_access(self) -> bool:
        """Bring the catalogue's access view up to date; False when it does not exist."""
        if self._access is False:
            return False
        if self._access is None:
            if not inspect(self.catalogue.engine).has_table("search_access"):
                self._access = False
                return False
            from access.rules import load_rules
            from access.search_access import AccessIndex

            self._access = AccessIndex(self.catalogue, load_rules(self.settings))
        self._access.sync()
        return True

    def _rows(self, where: str, params: dict[str, Any],
              limit: int | None = None) -> list[dict[str, Any]]:
        access = self._sync_access()
        columns = "d.id, d.aip_uuid, d.item_key, d.archival_code, d.title, d.text, d.facets"
        joins = ""
        if access:
            columns += (", a.control, a.open_date, a.pii_level, a.public_title, a.public_text, "
                        "a.public_facets")
            joins = " LEFT JOIN search_access a ON a.doc_id = d.id"
        sql = f"SELECT {columns} FROM search_docs d{joins} WHERE {where} ORDER BY d.id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self.catalogue.engine.connect() as connection:
            return [dict(r) for r in connection.execute(text(sql), params).mappings()]

    def documents_of(self, aip_uuids: list[str]) -> list[dict[str, Any]]:
        """The catalogue's search documents of these AIPs, with their access view."""
        marks = ", ".join(f":u{n}" for n in range(len(aip_uuids)))
        return self._rows(f"d.aip_uuid IN ({marks})",
                          {f"u{n}": u for n, u in enumerate(aip_uuids)})

    def documents_after(self, seq: int, limit: int) -> list[dict[str, Any]]:
        """The next ``limit`` search documents after catalogue id ``seq``."""
        return self._rows("d.id > :seq", {"seq": seq}, limit)

    # -- writes ----------------------------------------------------------------------------
    def _targets(self) -> list[str]:
        targets = [self.ensure_index()]
        with self.catalogue.session() as s:
            state = outbox.get_state(s, STATE)
        if state and state.get("target") and state["target"] not in targets:
            targets.append(state["target"])  # a reindex is building it: keep it current too
        return targets

    def _bulk(self, actions: Iterable[dict[str, Any]]) -> dict[str, str]:
        """Send actions; return document id -> error for those that failed after retries."""
        failures: dict[str, str] = {}
        with self._errors("bulk"):
            for ok, item in streaming_bulk(
                    self.client, actions, chunk_size=self.bulk_docs,
                    max_chunk_bytes=20 * 1024 * 1024, raise_on_error=False,
                    raise_on_exception=False, max_retries=self.retries, initial_backoff=1,
                    max_backoff=30, yield_ok=False, retry_on_status=(429, 502, 503, 504)):
                if not ok:
                    (_op, info), = item.items()
                    failures[str(info.get("_id"))] = _error_text(info)
        return failures

    def index_aips(self, aip_uuids: Iterable[str]) -> dict[str, str]:
        """Push these AIPs' documents (an AIP without documents is removed from the index).

        Returns:
            AIP -> error for the AIPs that could not be indexed.
        """
        uuids = sorted(set(aip_uuids))
        if not uuids:
            return {}
        failures: dict[str, str] = {}
        targets = self._targets()
        for start in range(0, len(uuids), 200):
            batch = uuids[start:start + 200]
            rows = self.documents_of(batch)
            found = {r["aip_uuid"] for r in rows}
            actions = [{"_op_type": "index", "_index": target,
                        "_id": document_id(r["aip_uuid"], r["item_key"]),
                        "_source": es_document(r)} for target in targets for r in rows]
            for doc_id, error in self._bulk(actions).items():
                failures[doc_id.split("/", 1)[0]] = error
            gone = [u for u in batch if u not in found]
            failures.update(self._delete(gone, targets))
        return failures

    def delete_aips(self, aip_uuids: Iterable[str]) -> dict[str, str]:
        """Remove these AIPs' documents; return AIP -> error for failures."""
        return self._delete(sorted(set(aip_uuids)), self._targets())

    def _delete(self, uuids: list[str], targets: list[str]) -> dict[str, str]:
        if not uuids:
            return {}
        try:
            with self._errors("delete documents"):
                self.client.delete_by_query(index=",".join(targets), refresh=True,
                                            query={"terms": {"aip_uuid": uuids}},
                                            conflicts="proceed")
        except SearchError as exc:
            return {u: str(exc) for u in uuids}
        return {}

    def refresh(self) -> None:
        """Make everything indexed so far searchable (tests and the reindex use it)."""
        with self._errors("refresh"):
            self.client.indices.refresh(index=self.alias)

    # -- search ----------------------------------------------------------------------------
    def search(self, query: Query, *, page: int = 1, per_page: int = 20,
               sort: str = "relevance", facet_limit: int = 20) -> SearchResult:
        """Run a query (see :class:`SearchEngine`); ``query.scope`` limits what is found."""
        scope = query.scope
        scoped = scope is not None and not scope.everything
        visible = content_visible(scope) if scoped else None
        content = self._branch(query, "content", "facets", visible)
        if scoped:
            public = self._branch(query, "public_content", "public_facets", listed_visible(scope))
            public["bool"].setdefault("must_not", []).append(self._matched(content))
            full = {"bool": {"should": [dict(content, bool={**content["bool"], "_name": "content"}),
                                        public], "minimum_should_match": 1}}
            size = max(facet_limit * 10, 500)
            aggs = {"content": {"filter": self._matched(content),
                                "aggs": self._facet_aggs("facets", size)},
                    "public": {"filter": public, "aggs": self._facet_aggs("public_facets", size)}}
        else:
            full = content
            aggs = {"content": {"filter": _match_all(),
                                "aggs": self._facet_aggs("facets", facet_limit)}}
        ranking = self._ranking(query.terms)
        if ranking:
            full = {"bool": {"must": [full], "should": ranking}}
        start = (max(page, 1) - 1) * per_page
        size = max(0, min(per_page, MAX_WINDOW - start))
        try:
            with self._errors("search"):
                answer = self.client.search(index=self.alias, query=full, aggs=aggs,
                                            sort=SORT.get(sort, SORT["relevance"]),
                                            from_=min(start, MAX_WINDOW), size=size,
                                            track_total_hits=True).body
        except SearchError as exc:
            if isinstance(exc.__cause__, NotFoundError):
                return SearchResult(0, [], {})   # nothing indexed yet: no index behind the alias
            raise
        hits = [self._hit(h, query, scope if scoped else None) for h in answer["hits"]["hits"]]
        return SearchResult(int(answer["hits"]["total"]["value"]), hits,
                            self._facets(answer.get("aggregations", {}), facet_limit))

    def _branch(self, query: Query, field: str, facets: str,
                visible: dict[str, Any] | None) -> dict[str, Any]:
        filters = facet_filters(query.filters, facets) + ([visible] if visible else [])
        matched = text_query(query.terms, query.excluded, field)
        clause: dict[str, Any] = {"filter": filters} if filters else {}
        if matched:
            clause["must"] = [matched]
        return {"bool": clause or {"must": [_match_all()]}}

    @staticmethod
    def _matched(branch: dict[str, Any]) -> dict[str, Any]:
        """A branch as a pure filter (no name, no scoring)."""
        inner = {k: v for k, v in branch["bool"].items() if k != "_name"}
        return {"bool": {"filter": [{"bool": inner}]}}

    def _ranking(self, terms: list[str]) -> list[dict[str, Any]]:
        words = self.word_fields()
        return [{"match": {f"{field}.{sub}": {"query": term, "operator": "and"}}}
                for term in terms for sub in words for field in ("title", "text")]

    @staticmethod
    def _facet_aggs(prefix: str, size: int) -> dict[str, Any]:
        return {name: {"terms": {"field": f"{prefix}.{name}", "size": size,
                                 "shard_size": max(size * 5, 500)}} for name in FACET_FIELDS}

    @staticmethod
    def _facets(aggregations: dict[str, Any], limit: int) -> dict[str, list[tuple[str, int]]]:
        counts: dict[str, Counter] = {name: Counter() for name in FACET_FIELDS}
        for part in ("content", "public"):
            for name in FACET_FIELDS:
                for bucket in aggregations.get(part, {}).get(name, {}).get("buckets", []):
                    key = str(bucket.get("key_as_string", bucket["key"]))
                    counts[name][key] += bucket["doc_count"]
        return {name: facet_list(c, limit) for name, c in counts.items() if c}

    @staticmethod
    def _hit(raw: dict[str, Any], query: Query, scope: Any) -> Hit:
        src = raw["_source"]
        view = "content"
        title, body, facets = src.get("title") or "", src.get("text") or "", src.get("facets") or {}
        if scope is not None and "content" not in (raw.get("matched_queries") or []):
            view = "masked" if scope.see_open and scope._open(src) else "listed"
            title, body = src.get("public_title") or "", src.get("public_text") or ""
            facets = src.get("public_facets") or {}
        return Hit(src["aip_uuid"], src.get("item_key"), src.get("archival_code"), title,
                   masked_snippet(f"{title}\n{body}", query.terms), facets,
                   float(raw.get("_score") or 0.0), view)

    # -- reindex ---------------------------------------------------------------------------
    def reindex(self, *, fresh: bool = False, keep_old: bool = False,
                batch: int | None = None, max_batches: int | None = None,
                progress: ProgressFn | None = None) -> dict[str, Any]:
        """Build the next index version from the catalogue and swap the alias to it.

        Searches keep using the current version until the swap. Progress is checkpointed
        after every batch in the catalogue (``index_state``), so a reindex that was
        interrupted resumes where it stopped unless ``fresh`` is given.

        Arguments:
            fresh: drop an unfinished reindex and start again.
            keep_old: keep the previous version (default: deleted after the swap).
            batch: documents per bulk request (default ``elasticsearch_bulk_docs``).
            max_batches: stop after this many batches, leaving the reindex to be resumed.
            progress: called with (documents done, documents in the catalogue).

        Returns:
            A summary: target, previous index, documents, resumed_from, swapped.

        Raises:
            SearchError: the cluster failed, or the new index holds fewer documents than the
                catalogue (the alias is then left where it was).
        """
        batch = batch or self.bulk_docs
        state = {**self._reindex_state(fresh), "keep_old": keep_old}
        target, seq = state["target"], int(state["last_seq"])
        resumed_from = seq
        total = self._catalogue_docs()
        done = state.get("done", 0)
        batches = 0
        while True:
            if max_batches is not None and batches >= max_batches:
                return {"target": target, "documents": done, "resumed_from": resumed_from,
                        "swapped": False, "complete": False}
            rows = self.documents_after(seq, batch)
            if not rows:
                break
            failures = self._bulk({"_op_type": "index", "_index": target,
                                   "_id": document_id(r["aip_uuid"], r["item_key"]),
                                   "_source": es_document(r)} for r in rows)
            if failures:
                doc_id, error = next(iter(failures.items()))
                raise SearchError(f"reindex into {target}: {len(failures)} documents failed, "
                                  f"e.g. {doc_id}: {error}; run dangan reindex again to resume")
            seq, done, batches = rows[-1]["id"], done + len(rows), batches + 1
            self._save_state({**state, "last_seq": seq, "done": done})
            if progress:
                progress(done, total)
        previous = self._swap(state, total)
        return {"target": target, "previous": previous, "documents": done,
                "resumed_from": resumed_from, "swapped": True, "complete": True}

    def _reindex_state(self, fresh: bool) -> dict[str, Any]:
        with self.catalogue.session() as s:
            state = outbox.get_state(s, STATE)
        if state and not fresh and self._exists(state["target"]):
            return state
        if state and self._exists(state["target"]):
            with self._errors("drop unfinished reindex"):
                self.client.indices.delete(index=state["target"])
        self.put_template()
        current = self.current_index()
        target = self._next_name()
        with self._errors(f"create {target}"):
            self.client.indices.create(index=target)
        state = {"target": target, "source": current, "last_seq": 0, "done": 0,
                 "started_at": datetime.now(timezone.utc).isoformat()}
        self._save_state(state)
        return state

    def _exists(self, index: str) -> bool:
        with self._errors("check index"):
            return bool(self.client.indices.exists(index=index))

    def _save_state(self, state: dict[str, Any] | None) -> None:
        with self.catalogue.session() as s:
            outbox.set_state(s, STATE, state)

    def _catalogue_docs(self) -> int:
        with self.catalogue.session() as s:
            return int(s.scalar(select(func.count()).select_from(m.SearchDoc)) or 0)

    def _swap(self, state: dict[str, Any], total: int) -> str | None:
        target = state["target"]
        since = datetime.fromisoformat(state["started_at"]) - CATCH_UP_MARGIN
        with self.catalogue.session() as s:
            changed = outbox.aips_enqueued_since(s, since)
        if changed:  # indexed while the bulk copy ran: bring them over again
            failures = self.index_aips(changed)
            if failures:
                raise SearchError(f"reindex catch-up: {len(failures)} AIPs failed to index")
        with self._errors("refresh"):
            self.client.indices.refresh(index=target)
            count = int(self.client.count(index=target)["count"])
        expected = self._catalogue_docs()
        if count < expected:
            raise SearchError(f"reindex: {target} holds {count} documents, the catalogue "
                              f"{expected}; the alias still points at the previous index")
        current = self.current_index()
        actions = [{"add": {"index": target, "alias": self.alias}}]
        if current and current != target:
            actions.insert(0, {"remove": {"index": current, "alias": self.alias}})
        with self._errors("swap alias"):
            self.client.indices.update_aliases(actions=actions)
        self._save_state(None)
        self._word_fields = None
        if current and current != target and not state.get("keep_old"):
            with self._errors(f"delete {current}"):
                self.client.indices.delete(index=current)
        return current

    # -- status ----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Cluster, alias, index, document counts, analysis and any reindex in progress."""
        with self._errors("cluster info"):
            info = self.client.info().body
        index = self.current_index()
        documents = None
        if index:
            with self._errors("count"):
                documents = int(self.client.count(index=index)["count"])
        with self.catalogue.session() as s:
            state = outbox.get_state(s, STATE)
        plugins = sorted(self.plugins())
        return {"engine": "elasticsearch", "url": self.url,
                "server": {"distribution": info.get("version", {}).get("distribution",
                                                                      "elasticsearch"),
                           "version": info.get("version", {}).get("number")},
                "alias": self.alias, "index": index, "documents": documents,
                "catalogue_documents": self._catalogue_docs(),
                "analysis": {"cjk": True, "word_fields": self.word_fields(),
                             "plugins": plugins},
                "reindex": state}


def _version_of(name: str) -> int:
    found = re.search(r"-v(\d+)$", name)
    return int(found.group(1)) if found else 0


def _error_text(info: dict[str, Any]) -> str:
    error = info.get("error") or info.get("exception") or info
    if isinstance(error, dict):
        status = info.get("status", "")
        return f"{status} {error.get('type', '')}: {error.get('reason', '')}".strip()
    return str(error)


def _redact(url: str) -> str:
    return re.sub(r"//[^@/]*@", "//***@", url or "")

