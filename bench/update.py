"""One-document updates of a 200-document AIP (``dangan update``) against re-ingesting the
whole volume as a new AIP (the naive way), in one run, in one fresh home.

Data set: one household volume of ``--docs`` documents (default 200) of ``--doc-kib`` KiB
(default 256) each, with its 归档文件目录 sheet; ingested once, untimed.
Contenders, alternating, ``--updates`` times each (default 5):
  update  ``ingest.update.update``: one document replaced (staged, checked as at ingest,
          version N+1 written: the new document, METS, record, report, manifests, inventory)
  naive   ``ingest.pipeline.ingest`` of the whole volume again with that one document
          changed, as a new AIP (a new volume 档号, since the old one is held)
Figures: wall-clock time per operation (median) and bytes added to the storage location
(measured on disk, before and after), with the ratio naive / update.

Reproduce:  python -m bench.update [--docs 200] [--doc-kib 256] [--updates 5] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import machine, save, table

HEADER = ["序号", "档号", "文号", "责任者", "题名", "日期", "密级", "页数", "备注", "保管期限",
          "精准扶贫类别", "致贫原因", "计算机文件名"]


def volume(root: Path, docs: int, size: int, household: int) -> Path:
    """A transfer of one household volume: ``docs`` text documents and the sheet."""
    root.mkdir(parents=True)
    rows = []
    for n in range(1, docs + 1):
        name = f"户卷/{n:03d}-材料.txt"
        (root / name).parent.mkdir(exist_ok=True)
        (root / name).write_text(f"第{n}件 入户调查 因病致贫\n" + os.urandom(size // 2).hex()
                                 [: size - 40], encoding="utf-8")
        rows.append([str(n), f"Q001-JF·02·630121100201-{household:04d}-{n:03d}", "", "某村委会",
                     f"第{n}件材料", "20160315", "限制", "1", "", "永久", "02", "因病", name])
    with open(root / "归档文件目录.csv", "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return root


def stored_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=200)
    parser.add_argument("--doc-kib", type=int, default=256)
    parser.add_argument("--updates", type=int, default=5)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dangan-bench-update-", dir=args.workdir))
    home = work / "home"
    home.mkdir()
    os.environ["DANGAN_HOME"] = str(home)
    os.environ.setdefault("DANGAN_FULLTEXT_OCR", "false")
    from ingest.pipeline import ingest
    from ingest.update import UpdateRequest, update
    from policies import load_settings

    settings = load_settings(home)
    size = args.doc_kib << 10
    first = ingest(volume(work / "v1", args.docs, size, 1), settings)
    assert first.status == "accepted", first.failures
    uuid = first.aips[0]["uuid"]
    aips = home / "aips"
    timings: dict[str, list[float]] = {"update": [], "naive": []}
    written: dict[str, list[int]] = {"update": [], "naive": []}
    for n in range(args.updates):
        new = work / f"new-{n}.txt"
        new.write_text(f"更正 {n}\n" + os.urandom(size // 2).hex()[: size - 20], encoding="utf-8")
        target = f"户卷/{n + 1:03d}-材料.txt"
        before, start = stored_bytes(aips), time.perf_counter()
        result = update(UpdateRequest(uuid, f"动态调整 {n}",
                                      replace=[(f"data/objects/{target}", new)]), settings)
        timings["update"].append(time.perf_counter() - start)
        written["update"].append(stored_bytes(aips) - before)
        assert result.status == "updated", result.failures
        again = volume(work / f"naive-{n}", args.docs, size, n + 2)
        shutil.copyfile(new, again / target)
        before, start = stored_bytes(aips), time.perf_counter()
        naive = ingest(again, settings)
        timings["naive"].append(time.perf_counter() - start)
        written["naive"].append(stored_bytes(aips) - before)
        assert naive.status == "accepted", naive.failures
        shutil.rmtree(again)
    med = {k: statistics.median(v) for k, v in timings.items()}
    mean_bytes = {k: statistics.mean(v) for k, v in written.items()}
    rows = [["contender", "median s", "bytes written (mean)"],
            *[[k, f"{med[k]:.2f}", f"{mean_bytes[k]:,.0f}"] for k in ("update", "naive")],
            ["naive/update", f"{med['naive'] / med['update']:.1f}x",
             f"{mean_bytes['naive'] / mean_bytes['update']:.1f}x"]]
    print(f"{args.docs} documents of {args.doc_kib} KiB, {args.updates} one-document updates")
    print(table(rows))
    path = save("update", {"machine": machine(), "docs": args.docs, "doc_kib": args.doc_kib,
                           "seconds": timings, "bytes": written})
    print(f"results: {path}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
