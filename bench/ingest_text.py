"""Ingest wall time with full text deferred (the default) against OCR inline and OCR off, and
the text jobs' throughput, on the same sample transfer in one run.

Compared (each in a fresh home, ``dangan ingest`` as a subprocess, the same transfer):
  before       optional: another tree's ``dangan ingest`` (``--before DIR``, e.g. main
               exported with ``git archive main | tar -x -C DIR``): what ingest did before
               (pdfminer.six layout analysis, OCR inline)
  inline       ``dangan ingest --wait-for-text``: returns once the OCR is done too
  default      ``dangan ingest``: returns once the AIPs are stored and catalogued, OCR queued
  ocr off      ``DANGAN_FULLTEXT_OCR=false``
Text-job throughput: OCR'd pages per second from the jobs the inline run finished (pages and
seconds each job recorded), text-layer pages per second from reading every PDF of the transfer
the way ingest does (OCR deferred).

Reproduce:  .venv/bin/python -m bench.ingest_text [--households 20] [--before DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import machine, save, table

TREE = Path(__file__).resolve().parents[1]


def _env(home: Path, extra: dict[str, str] | None = None,
         tree: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DANGAN_")}
    env["DANGAN_HOME"] = str(home)
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    env.update(extra or {})
    return env


def _ingest(transfer: Path, home: Path, args: list[str], extra: dict[str, str] | None = None,
            tree: Path | None = None) -> tuple[float, dict]:
    home.mkdir(parents=True)
    program = [sys.executable, str((tree or TREE) / "dangan.py")]
    start = time.perf_counter()
    done = subprocess.run([*program, "ingest", "--json", *args, str(transfer)],
                          capture_output=True, text=True, env=_env(home, extra, tree))
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"ingest failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds, json.loads(done.stdout)


def _job_throughput(home: Path) -> dict:
    """OCR'd pages and the seconds the fulltext jobs of a home took."""
    import sqlite3

    with sqlite3.connect(home / "catalogue.db") as db:
        results = [json.loads(r[0]) for r in db.execute(
            "SELECT result FROM jobs WHERE kind = 'fulltext' AND status = 'done'")]
    pages = sum(r["pages"] for r in results)
    seconds = sum(r["seconds"] for r in results)
    return {"jobs": len(results), "ocr_pages": pages, "seconds": round(seconds, 2),
            "ocr_pages_per_s": round(pages / seconds, 2) if seconds else None}


def _text_layer_throughput(transfer: Path) -> dict:
    from ingest import fulltext

    options = fulltext.Options(defer_ocr=True)
    pdfs = sorted(transfer.rglob("*.pdf"))
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = [fulltext.extract_file(p.name, p, "application/pdf", options, pool)
                   for p in pdfs]
    seconds = time.perf_counter() - start
    layer = sum(r.pages - len(r.pending_pages) for r in results)
    return {"pdfs": len(pdfs), "text_layer_pages": layer,
            "scan_pages_queued": sum(len(r.pending_pages) for r in results),
            "seconds": round(seconds, 2), "text_layer_pages_per_s": round(layer / seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=20)
    parser.add_argument("--before", type=Path, help="a tree with the earlier code")
    args = parser.parse_args(argv)
    from ingest import sample_transfer

    runs: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="dangan-bench-ingest-text-") as tmp:
        work = Path(tmp)
        transfer = work / "transfer"
        sample_transfer.generate(transfer, households=args.households)
        cases = []
        if args.before:
            cases.append(("before (other tree, OCR inline)", [], {}, args.before.resolve()))
        cases += [("inline (--wait-for-text)", ["--wait-for-text"], {}, None),
                  ("default (text deferred)", [], {}, None),
                  ("ocr off", [], {"DANGAN_FULLTEXT_OCR": "false"}, None)]
        for n, (name, flags, extra, tree) in enumerate(cases):
            home = work / f"home-{n}"
            seconds, result = _ingest(transfer, home, flags, extra, tree)
            runs[name] = {"seconds": round(seconds, 2), "aips": len(result.get("aips", [])),
                          "text_jobs": len(result.get("text_jobs", []))}
            if flags == ["--wait-for-text"]:
                runs[name]["jobs"] = _job_throughput(home)
            print(f"{name}: {seconds:.1f} s", file=sys.stderr)
        text_layer = _text_layer_throughput(transfer)
    default = runs["default (text deferred)"]["seconds"]
    rows = [["ingest", "s", "x default"]]
    for name, run in runs.items():
        rows.append([name, f"{run['seconds']:.1f}", f"{run['seconds'] / default:.2f}"])
    jobs = runs["inline (--wait-for-text)"].get("jobs", {})
    print(f"sample transfer, {args.households} households")
    print(table(rows))
    print(f"text jobs: {jobs.get('ocr_pages')} OCR'd pages in {jobs.get('seconds')} s "
          f"({jobs.get('ocr_pages_per_s')} pages/s, {jobs.get('jobs')} jobs); text layer: "
          f"{text_layer['text_layer_pages']} pages in {text_layer['seconds']} s "
          f"({text_layer['text_layer_pages_per_s']} pages/s)")
    data = {"households": args.households, "runs": runs, "text_layer": text_layer,
            "machine": machine()}
    print(f"saved {save('ingest_text', data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
