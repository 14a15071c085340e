"""Search at scale: 1,000,000 generated items in the embedded index (SQLite FTS5).

Measures, in one run:

* the indexing rate of ``Catalogue.index_many`` (search documents + bigram and jieba tokens),
  beside its baseline: the same documents into a plain FTS5 table with SQLite's own
  ``unicode61`` tokenizer (no Chinese segmentation at all), so the ratio is the price of
  finding two-character words;
* p50 / p95 latency of two-character Chinese queries with facet counts (and, for a third of
  them, a facet filter) through the embedded engine's ``search()``, beside the baseline of
  SQLite merely counting the same bigram's matches (``SELECT count(*) … MATCH``); twice:
  as they come (a word asked before is served from the postings and scores the engine keeps
  until the index changes) and "first", every query after those are dropped;
* for reference, the same queries against osmem-server — an in-memory emulator of the
  OpenSearch API, not Elasticsearch: its figures say nothing about a real cluster.

Reproduce::

    python -m bench.search_scale                        # 1,000,000 items, 200 queries
    python -m bench.search_scale --items 100000 --queries 50 --emulator-items 0

Results go to bench/results/search_scale.json and are printed as a table.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from bench.common import machine, save, table

SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕"
GIVEN = "文全秀英建国桂兰志强海燕德胜玉梅永福春花国华凤英明军金山红霞学军淑珍"
DOC_TYPES = ["贫困户申请书", "入户调查表", "民主评议会议记录", "两公示一公告", "扶贫手册",
             "脱贫确认书", "危房改造验收表", "易地扶贫搬迁协议", "产业扶持资金发放表",
             "教育资助申请表", "医疗救助审批表", "小额信贷合同", "公益岗位聘用协议",
             "帮扶计划", "收入核算表", "低保审批表"]
CAUSES = ["因病", "因残", "因学", "因灾", "缺土地", "缺水", "缺技术", "缺劳力", "缺资金",
          "交通条件落后", "自身发展动力不足"]
MEASURES = ["低保兜底保障", "产业扶持：种植中药材", "牛羊养殖合作社分红", "光伏扶贫电站收益",
            "转移就业培训", "教育资助雨露计划", "医疗救助先诊疗后付费", "易地扶贫搬迁安置",
            "危房改造补助", "饮水安全巩固提升", "扶贫小额信贷贴息", "公益岗位就业",
            "残疾人两项补贴", "健康扶贫家庭医生签约", "电商扶贫网店", "劳务输出"]
HOUSEHOLD_TYPES = ["一般贫困户", "低保贫困户", "特困供养户"]
FORMATS = ["fmt/17", "fmt/18", "fmt/43", "fmt/412", "fmt/354"]
QUERY_WORDS = ["因病", "低保", "脱贫", "扶贫", "搬迁", "养殖", "光伏", "医疗", "教育", "危房",
               "饮水", "产业", "就业", "信贷", "培训", "残疾", "合作", "分红", "公示", "兜底",
               "补贴", "电商", "劳务", "中药", "家庭"]


def villages(rng: random.Random) -> list[str]:
    """1,000 village codes: 5 counties x 10 townships x 20 villages."""
    out = []
    for county in range(5):
        for township in range(10):
            for village in range(20):
                out.append(f"6301{21 + county:02d}{100 + township:03d}{201 + village:03d}")
    rng.shuffle(out)
    return out


def generate(items: int, seed: int = 1) -> Iterator[tuple[str, list]]:
    """AIPs (uuid, search documents): household volumes of 6–12 items, like ingest makes."""
    from storage.catalogue import SearchDocument

    rng = random.Random(seed)
    codes = villages(rng)
    made = 0
    while made < items:
        village = codes[int(rng.paretovariate(1.2)) % len(codes)]   # some villages are big
        head = rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN)
        causes = sorted(rng.sample(CAUSES, rng.choice((1, 1, 2, 3))))
        household = rng.choice(HOUSEHOLD_TYPES)
        identified = rng.randint(2014, 2017)
        volume = f"Q{village[4:6]}-JF·02·{village}-{made:07d}"
        docs = [SearchDocument("item-000", volume, f"建档立卡户档案 {head}户",
                               f"{head}\n{village}\n{household}\n{' '.join(causes)}",
                               {"level": "户卷", "category": "02", "retention": "Y",
                                "county": village[:6], "township": village[:9],
                                "village": village, "household_type": household,
                                "poverty_causes": causes})]
        for n in range(1, min(rng.randint(6, 12), items - made)):
            kind = rng.choice(DOC_TYPES)
            year = rng.randint(identified, 2020)
            measures = "；".join(rng.sample(MEASURES, 2))
            text = "\n".join([f"{head}户{kind}", head, f"{year}{rng.randint(1, 12):02d}15",
                              village, household, " ".join(causes), measures,
                              f"{n:03d}-{kind}.pdf"])
            docs.append(SearchDocument(
                f"item-{n:03d}", f"{volume}-{n:03d}", f"{head}户{kind}", text,
                {"level": "件", "category": "02", "year": year, "retention": "Y",
                 "county": village[:6], "township": village[:9], "village": village,
                 "household_type": household, "poverty_causes": causes,
                 "formats": [rng.choice(FORMATS)]}))
        made += len(docs)
        yield str(uuid.UUID(int=rng.getrandbits(128), version=4)), docs


# -- indexing ---------------------------------------------------------------------------------

def index_embedded(home: Path, items: int, batch: int = 2000) -> dict:
    """Index ``items`` documents through the catalogue; return rate and size."""
    from policies import load_settings
    from storage.catalogue import Catalogue

    catalogue = Catalogue.open(load_settings(home, environ={}))
    pending, count, seconds = [], 0, 0.0
    for aip in generate(items):
        pending.append(aip)
        if sum(len(d) for _, d in pending) >= batch:
            seconds += _commit(catalogue, pending)
            count += sum(len(d) for _, d in pending)
            pending = []
    if pending:
        seconds += _commit(catalogue, pending)
        count += sum(len(d) for _, d in pending)
    size = sum(p.stat().st_size for p in home.glob("catalogue.db*"))
    return {"items": count, "seconds": round(seconds, 1), "items_per_s": round(count / seconds),
            "database_mib": round(size / 2**20)}


def _commit(catalogue, batch) -> float:
    started = time.perf_counter()
    with catalogue.session() as s:
        catalogue.index_many(s, batch)
    return time.perf_counter() - started


def index_baseline(folder: Path, items: int, batch: int = 2000) -> dict:
    """The same text into a plain FTS5 table (unicode61 tokenizer, no segmentation)."""
    connection = sqlite3.connect(folder / "baseline.db")
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("CREATE VIRTUAL TABLE plain USING fts5(body)")
    rows, count, seconds = [], 0, 0.0
    for _aip, docs in generate(items):
        rows += [(f"{d.archival_code or ''} {d.title}\n{d.text}",) for d in docs]
        if len(rows) >= batch:
            started = time.perf_counter()
            with connection:
                connection.executemany("INSERT INTO plain(body) VALUES (?)", rows)
            seconds += time.perf_counter() - started
            count, rows = count + len(rows), []
    if rows:
        started = time.perf_counter()
        with connection:
            connection.executemany("INSERT INTO plain(body) VALUES (?)", rows)
        seconds += time.perf_counter() - started
        count += len(rows)
    connection.close()
    return {"items": count, "seconds": round(seconds, 1), "items_per_s": round(count / seconds)}


# -- queries ----------------------------------------------------------------------------------

def queries(count: int, seed: int = 2) -> list[str]:
    """Two-character words; a third with a facet filter (year, county or cause)."""
    rng = random.Random(seed)
    counties = sorted({v[:6] for v in villages(random.Random(1))})
    out = []
    for n in range(count):
        word = rng.choice(QUERY_WORDS)
        extra = ["", "", "", f" year:{rng.randint(2014, 2020)}", f" county:{rng.choice(counties)}",
                 f" cause:{rng.choice(CAUSES[:4])}"][n % 6]
        out.append(word + extra)
    return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _latency(times: list[float]) -> dict:
    return {"p50_ms": round(_pct(times, 0.5) * 1000, 1),
            "p95_ms": round(_pct(times, 0.95) * 1000, 1),
            "mean_ms": round(statistics.mean(times) * 1000, 1)}


def run_queries(engine, texts: list[str], max_seconds: float, sort: str = "relevance",
                cold: bool = False) -> dict:
    """Each query once (after a warm-up over a few), a page of 20 hits with facet counts.

    With ``cold``, the engine forgets what earlier searches kept in memory (term postings and
    scores) before each query, as after an index change: every query is a first one.
    """
    from access.search import parse_query

    for text in texts[:5]:
        engine.search(parse_query(text), sort=sort)
    times, totals = [], []
    deadline = time.monotonic() + max_seconds
    for text in texts:
        if time.monotonic() > deadline:
            break
        if cold and hasattr(engine, "drop_caches"):
            engine.drop_caches()
        started = time.perf_counter()
        result = engine.search(parse_query(text), per_page=20, sort=sort)
        times.append(time.perf_counter() - started)
        totals.append(result.total)
        assert result.facets or not result.total
    return {**_latency(times), "sort": sort, "cold": cold, "queries": len(times),
            "median_matches": int(statistics.median(totals)), "max_matches": max(totals)}


def count_baseline(home: Path, texts: list[str]) -> dict:
    """SQLite only counting each query word's bigram matches (no ranking, facets, snippets)."""
    connection = sqlite3.connect(home / "catalogue.db")
    times = []
    for text in texts:
        word = text.split()[0]
        started = time.perf_counter()
        connection.execute("SELECT count(*) FROM search_fts WHERE search_fts MATCH ?",
                           (f'grams:"{word}"',)).fetchone()
        times.append(time.perf_counter() - started)
    connection.close()
    return _latency(times)


def emulator(home: Path, texts: list[str], max_seconds: float) -> dict:
    """Load a catalogue's documents into osmem-server (reindex) and run the same queries."""
    from osmem_server import OsmemServer

    from access.search.elastic import ElasticSearch
    from policies import load_settings
    from storage.catalogue import Catalogue

    with OsmemServer.start(japanese=False) as server:
        settings = load_settings(home, environ={"DANGAN_SEARCH_ENGINE": "elasticsearch",
                                                "DANGAN_SEARCH_ELASTICSEARCH_URL": server.url,
                                                "DANGAN_SEARCH_ELASTICSEARCH_BULK_DOCS": "2000"})
        engine = ElasticSearch(settings, Catalogue.open(settings))
        started = time.perf_counter()
        summary = engine.reindex()
        seconds = time.perf_counter() - started
        engine.refresh()
        found = run_queries(engine, texts, max_seconds)
    return {"label": "osmem-server (in-memory OpenSearch-API emulator, NOT Elasticsearch)",
            "items": summary["documents"], "reindex_seconds": round(seconds, 1),
            "items_per_s": round(summary["documents"] / seconds), "search": found}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--max-seconds", type=float, default=600, help="per query series")
    parser.add_argument("--emulator-items", type=int, default=100_000,
                        help="items for the osmem-server reference (0: skip it)")
    parser.add_argument("--folder", type=Path, help="work folder (default: a temp folder)")
    args = parser.parse_args(argv)
    folder = args.folder or Path(tempfile.mkdtemp(prefix="dangan-search-scale-"))
    home = folder / "home"
    home.mkdir(parents=True, exist_ok=True)
    before = machine()
    texts = queries(args.queries)
    print(f"indexing {args.items:,} items into {home} …", flush=True)
    embedded_index = index_embedded(home, args.items)
    print(f"  embedded {embedded_index}", flush=True)
    baseline_index = index_baseline(folder, args.items)
    print(f"  baseline {baseline_index}", flush=True)
    engine = _embedded(home)
    started = time.perf_counter()
    engine.search(__import__("access.search", fromlist=["parse_query"]).parse_query("year:2016"))
    cold = round(time.perf_counter() - started, 1)
    searches = {f"{sort}{' first' if cold else ''}": run_queries(engine, texts, args.max_seconds,
                                                                   sort, cold)
                for cold in (False, True) for sort in ("relevance", "code")}
    print(f"  search {searches} (cold start {cold} s)", flush=True)
    baseline_search = count_baseline(home, texts)
    reference = None
    if args.emulator_items:
        small = folder / "small"
        small.mkdir(exist_ok=True)
        index_embedded(small, args.emulator_items)
        reference = emulator(small, texts, args.max_seconds)
        reference["embedded_same_items"] = run_queries(_embedded(small), texts,
                                                       args.max_seconds)
        print(f"  emulator {reference}", flush=True)
    result = {"command": "python -m bench.search_scale " + " ".join(argv or []),
              "machine_before": before, "machine_after": machine(),
              "index": {"embedded": embedded_index, "baseline_fts5_unicode61": baseline_index,
                        "ratio": round(embedded_index["items_per_s"]
                                       / baseline_index["items_per_s"], 2),
                        "target_items_per_s": 5000},
              "search": {"embedded": searches, "cold_start_seconds": cold,
                         "baseline_count_only": baseline_search, "target_p95_ms": 50},
              "emulator_reference": reference}
    path = save("search_scale", result)
    rows = [["measure", "Dangan", "baseline", "ratio", "target"],
            ["index items/s", embedded_index["items_per_s"], baseline_index["items_per_s"],
             result["index"]["ratio"], ">= 5000"]]
    for sort, found in searches.items():   # "first": every query after caches are dropped
        for q in ("p50", "p95"):
            rows.append([f"query {q} ms ({sort})", found[f"{q}_ms"], baseline_search[f"{q}_ms"],
                         round(found[f"{q}_ms"] / max(baseline_search[f"{q}_ms"], 0.1), 1),
                         "<= 50" if q == "p95" else ""])
    if reference:
        same = reference["embedded_same_items"]
        rows += [[f"osmem EMULATOR {reference['items']:,} items: items/s",
                  reference["items_per_s"], "", "", "reference only"],
                 ["osmem EMULATOR p50/p95 ms (relevance)",
                  f"{reference['search']['p50_ms']}/{reference['search']['p95_ms']}",
                  f"{same['p50_ms']}/{same['p95_ms']}", "embedded, same items", ""]]
    print(table(rows))
    print(f"{embedded_index['items']:,} items; median matches per query "
          f"{searches['relevance']['median_matches']:,} (max "
          f"{searches['relevance']['max_matches']:,}); cold start {cold} s; load "
          f"{before['load_avg']} -> {result['machine_after']['load_avg']}; {path}")


def _embedded(home: Path):
    from access.search.embedded import EmbeddedSearch
    from policies import load_settings
    from storage.catalogue import Catalogue

    return EmbeddedSearch(Catalogue.open(load_settings(home, environ={})))


if __name__ == "__main__":
    main()
