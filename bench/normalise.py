"""Normalisation cost per document: LibreOffice started once for a batch and reused, against
one LibreOffice process per file, on the same DOCX files in the same run.

Both ways go through :func:`ingest.normalise.run_batch` (``reuse=True`` / ``reuse=False``)
and make PDF/A-2b copies that are identified again and checked (opens, text, PDF/A
identification); only the conversion is timed apart from the checks in ``convert_s``. The
documents are one-page Chinese DOCX files written with python-docx. Usage::

    python -m bench.normalise [--files 20] [--repeat 2]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.common import machine, save, table


def make_documents(folder: Path, count: int) -> list[Path]:
    import docx

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        document = docx.Document()
        document.add_heading(f"贫困户建档立卡申请书（第{n + 1}号）", 1)
        for line in range(12):
            document.add_paragraph(f"本户家庭成员{line + 2}人，因病致贫，申请纳入低保，"
                                   f"村民代表会议评议通过，公示无异议。第{line + 1}段。")
        path = folder / f"{n + 1:03d}-申请书.docx"
        document.save(str(path))
        paths.append(path)
    return paths


def run(files: int, repeat: int) -> dict:
    from ingest import normalise
    from ingest.normalise import convert
    from policies import load_preservation_policy, load_settings

    if shutil.which("soffice") is None:
        return {"skipped": "soffice not installed (apt-get install libreoffice-writer-nogui)"}
    policy = load_preservation_policy(load_settings("/nonexistent-dangan-home"))
    with tempfile.TemporaryDirectory(prefix="bench-normalise-") as tmp:
        root = Path(tmp)
        documents = make_documents(root / "docs", files)
        action = normalise.plan(policy, "fmt/412", documents[0].name)[0]
        jobs = [normalise.Job(action, p) for p in documents]
        results: dict[str, dict] = {}
        for name, reuse in (("one process per batch", True), ("one process per file", False)):
            totals, converts, kept = [], [], 0
            for attempt in range(repeat):
                work = root / f"work-{int(reuse)}-{attempt}"
                start = time.perf_counter()
                convert.run_batch(policy, [(action, p) for p in documents], work / "c",
                                  reuse=reuse)
                converts.append(time.perf_counter() - start)
                start = time.perf_counter()
                made = normalise.run_batch(policy, jobs, work / "v", reuse=reuse)
                totals.append(time.perf_counter() - start)
                kept = sum(1 for d in made if d.kept)
            results[name] = {"convert_s": statistics.median(converts),
                             "total_s": statistics.median(totals),
                             "per_document_s": statistics.median(totals) / files,
                             "kept": kept, "runs_convert_s": [round(t, 2) for t in converts]}
    batch, single = results["one process per batch"], results["one process per file"]
    return {"files": files, "repeat": repeat, "machine": machine(), "results": results,
            "speedup_convert": single["convert_s"] / batch["convert_s"],
            "speedup_total": single["total_s"] / batch["total_s"],
            "libreoffice": normalise.tools.version(policy.tools["libreoffice"])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    data = run(args.files, args.repeat)
    if "skipped" in data:
        print(data["skipped"])
        return 0
    rows = [["LibreOffice", "convert s", "convert+checks s", "s/document", "kept"]]
    for name, r in data["results"].items():
        rows.append([name, f"{r['convert_s']:.2f}", f"{r['total_s']:.2f}",
                     f"{r['per_document_s']:.3f}", f"{r['kept']}/{data['files']}"])
    print(f"{data['files']} DOCX -> PDF/A-2b, {data['libreoffice']}, median of {data['repeat']}")
    print(table(rows))
    print(f"reuse is {data['speedup_convert']:.1f}x faster to convert, "
          f"{data['speedup_total']:.1f}x with the checks")
    print(f"saved {save('normalise', data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
