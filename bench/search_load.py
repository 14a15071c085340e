"""Search under load: the portal's JSON search over the embedded engine with 100,000 items,
16 concurrent clients on loopback, two-character Chinese queries with facets (every answer
counts ten facet fields; four searches in five also filter by one or two of them).

Reproduce::

    python -m bench.search_load                      # 100,000 items, 16 clients
    python -m bench.search_load --items 20000 --clients 4 --requests 20

The holding is generated straight into a fresh catalogue (households of 8 items and county
documents, realistic vocabulary, full-text-sized bodies), the search access view is built,
then the portal (``dangan serve --workers N``, default 2) runs on 127.0.0.1. Each figure is set
beside its baseline measured in the same run: the same queries run in-process by one thread
(no HTTP, no concurrency). Before each measured run every worker has seen every query word
(the term postings are warm, as the baseline's are); the run with the result cache (the
portal's default, ``[portal] search_cache``) shows repeated searches, the one without it
shows every search computed. The load generator's own CPU time is recorded beside the
server's. Results go to bench/results/search_load.json.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid as uuidlib
from datetime import date, datetime, timezone
from pathlib import Path
from urllib.parse import quote

from bench.common import machine, save, table

WORDS = (
    "因病",
    "低保",
    "脱贫",
    "扶贫",
    "搬迁",
    "养殖",
    "光伏",
    "医疗",
    "教育",
    "住房",
    "饮水",
    "产业",
    "就业",
    "信贷",
    "危房",
    "培训",
    "残疾",
    "合作",
    "分红",
    "公示",
)
PHRASES = (
    "建档立卡贫困户",
    "精准识别",
    "易地扶贫搬迁",
    "产业扶持资金",
    "扶贫小额信贷",
    "村级光伏电站",
    "健康扶贫",
    "教育资助",
    "农村危房改造",
    "饮水安全巩固提升",
    "转移就业",
    "公益岗位",
    "合作社分红",
    "民主评议",
    "两公示一公告",
    "低保兜底",
    "因病致贫",
    "因学致贫",
    "缺技术",
    "缺劳力",
    "牛羊养殖",
    "技能培训",
    "残疾人补贴",
    "驻村工作队",
    "帮扶责任人",
    "脱贫攻坚",
    "巩固拓展",
    "乡村振兴",
    "防返贫监测",
)
SURNAMES = "马韩李王张赵祁冶鲁汪刘陈杨朱何胡孙吉雷谢"
GIVEN = "文明国华永福生德海成才保忠金贵发春林军得元有全学英兰秀花梅玉芳珍霞"
TITLES = (
    "贫困户申请书",
    "入户调查表",
    "两公示一公告",
    "扶贫手册",
    "帮扶计划",
    "脱贫确认书",
    "入户走访照片",
    "收入核算表",
)
CAUSES = ("因病", "因残", "因学", "因灾", "缺土地", "缺水", "缺技术", "缺劳力", "缺资金")
# facet filters the searches take in turn (none, one field, two fields)
FILTERS = ({}, {"year": ["2016"]}, {"category": ["02"]}, {"poverty_causes": ["因病"]},
           {"county": ["630121"], "year": ["2018"]})


def search_of(client: int, n: int) -> tuple[str, dict[str, list[str]]]:
    """The ``n``-th search of client ``client``: a two-character word and facet filters."""
    return WORDS[(client * 7 + n) % len(WORDS)], FILTERS[(client * 3 + n) % len(FILTERS)]


def _body(rng: random.Random, chars: int) -> str:
    parts, size = [], 0
    while size < chars:
        phrase = rng.choice(PHRASES)
        parts.append(phrase + rng.choice("，。、；"))
        size += len(phrase) + 1
    return "".join(parts)


def build(home: Path, items: int, seed: int = 1) -> dict:
    """Write ``items`` items (households of 8 + county documents) into a fresh catalogue."""
    from access.rules import Reader
    from access.services import AccessService
    from policies import load_settings
    from storage.catalogue import models as m
    from storage.catalogue import Catalogue, SearchDocument

    settings = load_settings(home, environ={})
    catalogue = Catalogue.open(settings)
    rng = random.Random(seed)
    now = datetime.now(timezone.utc)
    transfer = str(uuidlib.uuid4())
    started = time.perf_counter()
    general_aips: list[str] = []
    with catalogue.session() as s:
        s.add(
            m.Transfer(
                id=transfer,
                fingerprint="bench",
                source="bench",
                profile="jzfp",
                status="accepted",
                received_at=now,
                plan={},
                summary={},
            )
        )
    made = 0
    while made < items:
        batch_docs = []
        with catalogue.session() as s:
            for _ in range(50):
                if made >= items:
                    break
                aip = str(uuidlib.uuid4())
                household = rng.random() < 0.8
                year = rng.randint(2014, 2020)
                village = f"630121{rng.randint(100, 103)}{rng.randint(200, 230):03d}"
                count = 8 if household else 25
                s.add(
                    m.Aip(
                        uuid=aip,
                        transfer_id=transfer,
                        archival_code=None,
                        label="bench",
                        status="UPLOADED",
                        profile="jzfp",
                        created_at=now,
                        size=0,
                        file_count=0,
                        record={},
                        open_date=date(year + 25, 12, 31),
                    )
                )
                s.flush()
                docs = []
                head = rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN)
                causes = rng.sample(CAUSES, rng.randint(1, 2))
                for n in range(1, count + 1):
                    key = f"item-{n:03d}"
                    if household:
                        title = f"{head}{rng.choice(TITLES)}"
                        fields = {
                            "title": title,
                            "date": f"{year}0{rng.randint(1, 9)}15",
                            "year": str(year),
                            "head_name": head,
                            "village_code": village,
                            "household_type": "低保贫困户",
                            "poverty_causes": causes,
                            "jzfp_category": "02",
                            "retention_period": "永久",
                        }
                        facets = {
                            "level": "件",
                            "category": "02",
                            "year": year,
                            "retention": "Y",
                            "county": village[:6],
                            "township": village[:9],
                            "village": village,
                            "household_type": "低保贫困户",
                            "poverty_causes": causes,
                            "formats": ["fmt/18"],
                        }
                    else:
                        title = f"关于{rng.choice(PHRASES)}工作的通知"
                        fields = {
                            "title": title,
                            "date": f"{year}0{rng.randint(1, 9)}10",
                            "year": str(year),
                            "jzfp_category": "01",
                            "retention_period": "永久",
                        }
                        facets = {
                            "level": "件",
                            "category": "01",
                            "year": year,
                            "retention": "Y",
                            "formats": ["fmt/18"],
                        }
                    s.add(
                        m.Item(
                            aip_uuid=aip,
                            key=key,
                            parent_key=None,
                            level="件",
                            archival_code=f"Q001-B{made:07d}",
                            title=title,
                            date=fields["date"],
                            fields=fields,
                        )
                    )
                    docs.append(
                        SearchDocument(
                            key, f"Q001-B{made:07d}", title, title + "\n" + _body(rng, 300), facets
                        )
                    )
                    made += 1
                    if made >= items:
                        break
                batch_docs.append((aip, docs))
                if not household:
                    general_aips.append(aip)
            s.flush()
            for aip, docs in batch_docs:
                catalogue.index_documents(s, aip, docs)
    built = time.perf_counter() - started
    service = AccessService(settings, catalogue)
    archivist = Reader("archivist", "bench")
    decided = general_aips[: max(1, len(general_aips) // 2)]
    for aip in decided:  # half of the county documents opened early by review
        with catalogue.session() as s:
            from access.models import OpenDecision

            s.add(
                OpenDecision(
                    aip_uuid=aip,
                    item_key=None,
                    open_date=date(2020, 1, 1),
                    control="开放",
                    basis="bench",
                    decided_by="bench",
                    decided_at=now,
                )
            )
    started = time.perf_counter()
    synced = service.index.rebuild()
    access_seconds = time.perf_counter() - started
    from access import accounts

    for role in ("researcher", "archivist"):
        accounts.add_user(catalogue, f"bench-{role}", "bench password 1", role)
    del archivist
    return {
        "items": made,
        "build_seconds": round(built, 1),
        "access_rows": synced,
        "access_view_seconds": round(access_seconds, 1),
        "opened_aips": len(decided),
    }


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _summary(latencies: list[float], seconds: float, errors: int) -> dict:
    return {
        "requests": len(latencies),
        "errors": errors,
        "p50_ms": round(_pct(latencies, 0.50) * 1000, 1),
        "p95_ms": round(_pct(latencies, 0.95) * 1000, 1),
        "mean_ms": round(statistics.mean(latencies) * 1000, 1) if latencies else None,
        "throughput_rps": round(len(latencies) / seconds, 1) if seconds else None,
    }


def in_process(home: Path, role: str, repeat: int) -> dict:
    """Baseline: the same searches in this process, one thread, no HTTP, no result cache
    (term postings warm, as in the servers)."""
    from access.rules import Reader
    from access.services import AccessService
    from policies import load_settings

    service = AccessService(load_settings(home, environ={"DANGAN_PORTAL_SEARCH_CACHE": "0"}))
    reader = Reader(role, f"bench-{role}")
    for word in WORDS:  # warm the columns, the access view and the term postings, as the
        service.search(reader, word, per_page=20)  # servers are warmed before their runs
    latencies = []
    started = time.perf_counter()
    for n in range(repeat):
        t = time.perf_counter()
        word, filters = search_of(0, n)
        result = service.search(reader, word, filters, per_page=20)
        latencies.append(time.perf_counter() - t)
        assert result is not None
    return _summary(latencies, time.perf_counter() - started, 0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _login(port: int, user: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/login")
    response = conn.getresponse()
    page = response.read().decode()
    cookie = response.getheader("Set-Cookie").split(";")[0]
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    body = f"username={user}&password={quote('bench password 1')}&csrf_token={token}"
    conn.request(
        "POST",
        "/login",
        body=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie},
    )
    response = conn.getresponse()
    response.read()
    if response.status != 302:
        raise RuntimeError(f"login as {user} failed: {response.status}")
    return response.getheader("Set-Cookie").split(";")[0]


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its children still running."""
    tick = os.sysconf("SC_CLK_TCK")
    parents, total = {pid}, 0.0
    stats = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats.append((int(entry.name), int(fields[1]), int(fields[11]) + int(fields[12])))
    for own, parent, _ in stats:      # workers are the server's direct children
        if parent == pid:
            parents.add(own)
    for own, _, ticks in stats:
        if own in parents:
            total += ticks / tick
    return total


def load(port: int, cookie: str, clients: int, per_client: int, max_seconds: float,
         server_pid: int | None = None) -> dict:
    """``clients`` threads, each ``per_client`` searches (bounded by ``max_seconds``); with
    ``server_pid``, the CPU time the server and this load generator spent per request."""
    server_before = _cpu_seconds(server_pid) if server_pid else 0.0
    own_before = time.process_time()
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + max_seconds

    def client(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for n in range(per_client):
            if time.monotonic() > deadline:
                break
            word, filters = search_of(index, n)
            facets = "".join(f"&{name}={quote(value)}" for name, values in filters.items()
                             for value in values)
            t = time.perf_counter()
            try:
                conn.request(
                    "GET", f"/api/v1/search?q={quote(word)}{facets}&per_page=20",
                    headers={"Cookie": cookie}
                )
                response = conn.getresponse()
                data = response.read()
                ok = response.status == 200 and b'"facets"' in data
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            elapsed = time.perf_counter() - t
            with lock:
                if ok:
                    latencies.append(elapsed)
                else:
                    errors[0] += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    summary = _summary(latencies, time.perf_counter() - started, errors[0])
    if server_pid and latencies:
        served = len(latencies) + errors[0]
        summary["server_cpu_ms_per_request"] = round(
            (_cpu_seconds(server_pid) - server_before) / served * 1000, 2)
        summary["client_cpu_ms_per_request"] = round(
            (time.process_time() - own_before) / served * 1000, 2)
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=40, help="searches per client")
    parser.add_argument("--max-seconds", type=float, default=300)
    parser.add_argument("--home", type=Path, help="reuse a home built by an earlier run")
    parser.add_argument("--workers", type=int, default=2,
                        help="portal worker processes (dangan serve --workers)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="dangan-search-load-"))
    home = args.home or work / "home"
    info = {}
    if not (home / "catalogue.db").exists():
        home.mkdir(parents=True, exist_ok=True)
        info = build(home, args.items)
        print(f"built {info}", flush=True)
    rows = [["reader", "what", "requests", "p50 ms", "p95 ms", "rps", "p95 ratio",
             "CPU ms/request server, client"]]
    results = {
        "machine": machine(),
        "holding": info,
        "clients": args.clients,
        "workers": args.workers,
        "command": "python -m bench.search_load " + " ".join(argv or sys.argv[1:]),
        "runs": {},
    }
    baselines = {role: in_process(home, role, 3 * len(WORDS))
                 for role in ("researcher", "archivist")}
    for role, baseline in baselines.items():
        rows.append(
            [
                role,
                "in-process, 1 thread, no cache (baseline)",
                baseline["requests"],
                baseline["p50_ms"],
                baseline["p95_ms"],
                baseline["throughput_rps"],
                "1.00",
                "",
            ]
        )
        results["runs"][role] = {"baseline_in_process_1_thread_uncached": baseline}
    for cache in (0, 512):
        port = _free_port()
        env = {**os.environ, "DANGAN_HOME": str(home), "DANGAN_PORTAL_SEARCH_CACHE": str(cache)}
        server = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import dangan, sys; sys.exit(dangan.main())",
                "serve",
                "--port",
                str(port),
                "--workers",
                str(args.workers),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(600):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            for role, baseline in baselines.items():
                cookie = _login(port, f"bench-{role}")
                # warm up: every query word asked by several clients at once, so that each
                # worker process has seen each word before the measured run
                load(port, cookie, 2 * args.workers, len(WORDS), 120)
                loaded = load(port, cookie, args.clients, args.requests, args.max_seconds,
                              server.pid)
                ratio = (
                    round(loaded["p95_ms"] / baseline["p95_ms"], 2)
                    if baseline["p95_ms"] and loaded["requests"]
                    else None
                )
                what = f"HTTP, {args.clients} clients, {args.workers} workers, " + (
                    f"result cache {cache}" if cache else "no cache"
                )
                results["runs"][role][what] = {**loaded, "p95_ratio_vs_baseline": ratio}
                rows.append(
                    [
                        role,
                        what,
                        loaded["requests"],
                        loaded["p50_ms"],
                        loaded["p95_ms"],
                        loaded["throughput_rps"],
                        ratio,
                        f"{loaded.get('server_cpu_ms_per_request')}, "
                        f"{loaded.get('client_cpu_ms_per_request')}",
                    ]
                )
        finally:
            server.terminate()
            server.wait(30)
    path = save("search_load", results)
    print(table(rows))
    print(f"\n{info.get('items', '?')} items; results in {path}")


if __name__ == "__main__":
    main()
