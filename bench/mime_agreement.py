"""Do Siegfried's PRONOM MIME type and libmagic's MIME type agree where both answer?

The corpus: sample transfers (``ingest.sample_transfer``: PDF, JPEG, TIFF, DOC, DOCX, XLS,
XLSX, CSV sheets, with and without defects), ``ingest/sample_files``, the small set of the
ingest bench (``bench.ingest_bench --small-kind mixed``: PDF, PNG, JPEG, TXT, seeded), and
files of the machine's ``/usr/share`` (every n-th of each common extension, sorted by path,
so the same machine gives the same corpus). Each file is identified by Siegfried and by
libmagic; the file is put in one of the classes :func:`ingest.formats.pronom_mime` knows
(signature, extension only, unidentified, ambiguous, no MIME in the record) and, where
Siegfried identified it by signature, the two MIME types are compared.

Reproduce:  python -m bench.mime_agreement [--per-extension 60]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import magic
import pygfried

from bench.common import machine, save, table
from ingest.formats import pronom_mime, siegfried_basis

SYSTEM_EXTENSIONS = ("png", "jpg", "gif", "pdf", "svg", "xml", "html", "txt", "gz", "zip",
                     "tif", "tiff", "ttf", "json", "css", "js", "wav", "ogg", "mp3", "bmp",
                     "ico", "csv", "rtf", "ps", "eps")


def system_files(per_extension: int, root: str = "/usr/share") -> list[str]:
    found: dict[str, list[str]] = defaultdict(list)
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
            path = os.path.join(dirpath, name)
            if ext in SYSTEM_EXTENSIONS and os.path.isfile(path) and not os.path.islink(path):
                found[ext].append(path)
    chosen = []
    for ext in sorted(found):
        paths = sorted(found[ext])
        step = max(1, len(paths) // per_extension)
        chosen += [p for p in paths[::step][:per_extension] if os.path.getsize(p) > 0]
    return chosen


def build_corpus(work: Path, per_extension: int) -> dict[str, list[str]]:
    from bench.ingest_bench import make_small_files
    from ingest.sample_transfer import generate

    corpus: dict[str, list[str]] = {}
    generate(work / "sample-xlsx", households=20, seed=1)
    generate(work / "sample-csv", households=10, seed=2, sheet_format="csv")
    sample_files = Path(__file__).resolve().parent.parent / "ingest" / "sample_files"
    make_small_files(work / "bench-mixed", 2000, kind="mixed")
    for name in ("sample-xlsx", "sample-csv", "bench-mixed"):
        corpus[name] = sorted(str(p) for p in (work / name).rglob("*") if p.is_file())
    corpus["ingest/sample_files"] = sorted(str(p) for p in sample_files.iterdir() if p.is_file())
    corpus["/usr/share"] = system_files(per_extension)
    return corpus


def identification_cost(names: list[str], repeat: int = 3) -> dict:
    """CPU and wall seconds of :func:`ingest.formats.identify` over ``names``: as it is, and
    with libmagic asked about every file (as before the PRONOM MIME type was used)."""
    import resource
    import time

    import ingest.formats as formats

    def run() -> tuple[float, float]:
        who = (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
        before, start = [resource.getrusage(w) for w in who], time.perf_counter()
        formats.identify(names, workers=2)
        wall = time.perf_counter() - start
        after = [resource.getrusage(w) for w in who]
        return wall, sum(a.ru_utime + a.ru_stime - b.ru_utime - b.ru_stime
                         for a, b in zip(after, before))

    found: dict[str, list[tuple[float, float]]] = {"pronom_or_libmagic": [], "libmagic_all": []}
    original = formats.pronom_mime
    for _ in range(repeat):
        found["pronom_or_libmagic"].append(run())
        formats.pronom_mime = lambda match: None
        try:
            found["libmagic_all"].append(run())
        finally:
            formats.pronom_mime = original
    return {name: {"files": len(names), "wall_s": sorted(w for w, _ in runs)[len(runs) // 2],
                   "cpu_s": sorted(c for _, c in runs)[len(runs) // 2],
                   "load_avg_1min": round(os.getloadavg()[0], 2)}
            for name, runs in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-extension", type=int, default=60)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dangan-mime-"))
    detector = magic.Magic(mime=True)
    try:
        corpus = build_corpus(work, args.per_extension)
        cost = identification_cost(corpus["bench-mixed"])
        classes: Counter = Counter()
        by_puid: dict[tuple[str, str, str], Counter] = defaultdict(Counter)
        disagreements = []
        for group, names in corpus.items():
            result = pygfried.identify_many(names, workers=2)
            for entry in result["files"]:
                match = next((m for m in entry.get("matches", []) if m.get("ns") == "pronom"), {})
                kind = siegfried_basis(match)
                classes[(group, kind)] += 1
                if kind not in ("signature", "mime-differs"):
                    continue
                ours = match.get("mime", "").strip()
                theirs = detector.from_file(entry["filename"])
                agree = ours == theirs
                by_puid[(kind, match["id"], ours, theirs)][agree] += 1
                if not agree:
                    disagreements.append({"file": entry["filename"].replace(str(work), "<corpus>"),
                                          "class": kind, "puid": match["id"], "pronom": ours,
                                          "libmagic": theirs, "basis": match.get("basis", "")})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = [{"class": kind, "puid": puid, "pronom_mime": pronom, "libmagic_mime": lib,
             "agree": counts[True], "disagree": counts[False]}
            for (kind, puid, pronom, lib), counts in sorted(by_puid.items())]
    signature = [r for r in rows if r["class"] == "signature"]
    totals = {"files": sum(classes.values()),
              "signature": sum(n for (g, k), n in classes.items() if k == "signature"),
              "agree": sum(r["agree"] for r in signature),
              "disagree": sum(r["disagree"] for r in signature),
              "mime_differs_kept_on_libmagic": sum(r["agree"] + r["disagree"] for r in rows
                                                   if r["class"] == "mime-differs")}
    path = save("mime_agreement", {
        "machine": machine(), "totals": totals,
        "classes": [{"group": g, "class": k, "files": n} for (g, k), n in sorted(classes.items())],
        "by_puid": rows, "disagreements": disagreements, "identification_cost": cost,
        "command": f"python -m bench.mime_agreement --per-extension {args.per_extension}"})
    print(table([["group", "Siegfried basis", "files"]]
                + [[g, k, n] for (g, k), n in sorted(classes.items())]))
    print()
    print(table([["class", "PUID", "PRONOM MIME", "libmagic MIME", "agree", "disagree"]]
                + [[r["class"], r["puid"], r["pronom_mime"], r["libmagic_mime"], r["agree"],
                    r["disagree"]] for r in rows]))
    print(f"\n{totals}")
    for name, row in cost.items():
        print(f"identify() of {row['files']} bench-mixed files, {name}: {row['cpu_s']:.2f} s CPU, "
              f"{row['wall_s']:.2f} s wall (load {row['load_avg_1min']})")
    print(f"results: {path}")


if __name__ == "__main__":
    main()
