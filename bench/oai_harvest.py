"""How fast the OAI-PMH provider answers a harvester, beside the portal's anonymous search on
the same catalogue.

A catalogue of ``--items`` generated items (bench.search_load's: households, restricted, and
county documents, half of them opened by a review decision) is served in process (Flask's test
client: the figures leave out HTTP). Measured, median of ``--repeat`` runs, seconds:

  baseline  /api/v1/search?category=01&per_page=100   a page of the anonymous search
  ListIdentifiers, first page (100 headers)
  ListIdentifiers, a page deep in the harvest (resumption token)
  ListRecords oai_dc, first page (100 records)
  ListRecords dangan, first page
  GetRecord dangan
  a whole ListIdentifiers harvest (every page), once

Every list answer reads every public record's access row (the keyset is computed per request),
so its cost grows with the public holdings; this is the figure to watch.

Reproduce:  python -m bench.oai_harvest [--items 20000] [--repeat 5] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

from bench.common import machine, save, table, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    from access.portal import create_app
    from bench.search_load import build
    from policies import load_settings

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        built = build(home, args.items)
        client = create_app(load_settings(home, environ={})).test_client()

        def get(url: str) -> bytes:
            answer = client.get(url)
            assert answer.status_code == 200, url
            return answer.data

        def token(body: bytes) -> str | None:
            found = re.search(rb"<resumptionToken[^>]*>([^<]+)</resumptionToken>", body)
            return found.group(1).decode() if found else None

        first = get("/oai?verb=ListIdentifiers&metadataPrefix=oai_dc")
        identifier = re.search(rb"<identifier>([^<]+)</identifier>", first).group(1).decode()
        started, pages, headers, next_token = time.perf_counter(), 1, first.count(b"<header>"), \
            token(first)
        deep = None
        while next_token:
            body = get(f"/oai?verb=ListIdentifiers&resumptionToken={next_token}")
            pages += 1
            headers += body.count(b"<header>")
            if pages == 10:
                deep = next_token
            next_token = token(body)
        harvest = time.perf_counter() - started
        r = args.repeat
        rows = {
            "baseline: anonymous search, 100 hits": timed(
                lambda: get("/api/v1/search?category=01&per_page=100"), r),
            "ListIdentifiers, first page": timed(
                lambda: get("/oai?verb=ListIdentifiers&metadataPrefix=oai_dc"), r),
            "ListRecords oai_dc, first page": timed(
                lambda: get("/oai?verb=ListRecords&metadataPrefix=oai_dc"), r),
            "ListRecords dangan, first page": timed(
                lambda: get("/oai?verb=ListRecords&metadataPrefix=dangan"), r),
            "GetRecord dangan": timed(
                lambda: get(f"/oai?verb=GetRecord&metadataPrefix=dangan&identifier={identifier}"),
                r),
        }
        if deep:
            rows["ListIdentifiers, page 10 (token)"] = timed(
                lambda: get(f"/oai?verb=ListIdentifiers&resumptionToken={deep}"), r)
    out = {"machine": machine(), "catalogue": built, "repeat": r, "results": rows,
           "harvest": {"pages": pages, "headers": headers, "seconds": round(harvest, 2)}}
    saved = save("oai_harvest", out)
    print(f"{built['items']} items, {headers} public records; median of {r} (s)")
    print(table([["", "median s"]] + [[k, f"{v['median_s']:.4f}"] for k, v in rows.items()]))
    print(f"whole ListIdentifiers harvest: {pages} pages, {headers} headers, {harvest:.2f} s")
    print(f"saved {saved}")


if __name__ == "__main__":
    main()
