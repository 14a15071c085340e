"""Ingest throughput against its baselines, on the same bytes, in one run.

Data sets: (a) one 1 GiB file, (b) 20,000 files of 4 KiB.
Compared:
  dangan   the whole ingest (stage with digests, identify formats, checks, METS, AIP bag,
           store and read back, catalogue, index) through the Python API
  bagit    bagit-python doing the minimum of the same: copy into a store folder,
           ``make_bag`` with sha256, ``validate``
  hashlib  one sha256 pass over the bytes (the floor)
Both "no flush" (page cache allowed; Dangan's fsync off) and "flush" (Dangan's default:
sync and read back from disk; bagit: sync and evict before make_bag and validate) are run.
bagit and Dangan runs alternate, so that other work on the machine weighs on both alike;
the 1-minute load average is recorded beside each row. The small files are seeded
pseudo-random bytes, the same in every run.

Reproduce:  .venv/bin/python -m bench.ingest_bench [--big-mib 1024] [--small 20000] [--repeat 3]
            [--profile]   (cProfile top functions of one ingest of each set instead of timings)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import statistics
import tempfile
from pathlib import Path

import bagit

from bench.common import drop_cache, machine, make_big_file, profiled, save, table, timed
from ingest.pipeline import Ingester
from policies import load_settings


def make_small_files(folder: Path, count: int, size: int = 4096, per_dir: int = 1000,
                     seed: int = 7) -> None:
    """``count`` files of ``size`` pseudo-random bytes, ``per_dir`` per sub-folder.

    Seeded, file by file: random bytes now and then look like an executable to Siegfried
    (x-fmt/409), which the format policy rejects; with fixed bytes every run ingests the
    same, accepted transfer (the first N files are the same whatever N).
    """
    for index in range(count):
        sub = folder / f"d{index // per_dir:03d}"
        if index % per_dir == 0:
            sub.mkdir(parents=True, exist_ok=True)
        data = random.Random(seed * 1_000_003 + index).randbytes(size)
        (sub / f"f{index:06d}.bin").write_bytes(data)


def hash_all(folder: Path) -> None:
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            with open(os.path.join(dirpath, name), "rb", buffering=0) as handle:
                digest = hashlib.sha256()
                while block := handle.read(1 << 20):
                    digest.update(block)


def bagit_baseline(source: Path, store: Path, flush: bool) -> None:
    shutil.copytree(source, store)
    if flush:
        drop_cache(store)
    bag = bagit.make_bag(str(store), checksums=["sha256"])
    if flush:
        drop_cache(store)
    bag.validate()


def dangan_ingest(source: Path, home: Path, flush: bool) -> None:
    env = {"DANGAN_STORAGE_FSYNC": "true" if flush else "false"}
    settings = load_settings(home, environ=env)
    result = Ingester(settings).ingest(source)
    if result.status != "accepted":
        raise SystemExit(f"ingest {result.status}: " + "; ".join(
            f"{f['code']} {f['message']} {f['problems'][:3]}" for f in result.failures))


def run_set(name: str, source: Path, work: Path, repeat: int) -> list[dict]:
    rows = []
    size = sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
    hashed = timed(lambda: hash_all(source), repeat)
    for flush in (False, True):
        store, home = work / "store", work / "home"

        def reset() -> None:
            shutil.rmtree(store, ignore_errors=True)
            shutil.rmtree(home, ignore_errors=True)
            os.sync()

        baseline: list[float] = []
        ours: list[float] = []
        for _ in range(repeat):
            baseline += timed(lambda: bagit_baseline(source, store, flush), 1, reset)["runs_s"]
            ours += timed(lambda: dangan_ingest(source, home, flush), 1, reset)["runs_s"]
        reset()
        baseline_s, ours_s = statistics.median(baseline), statistics.median(ours)
        rows.append({"set": name, "bytes": size, "flush": flush,
                     "load_avg_1min": round(os.getloadavg()[0], 2),
                     "dangan_s": ours_s, "bagit_s": baseline_s,
                     "hashlib_s": hashed["median_s"],
                     "speedup_vs_bagit": baseline_s / ours_s,
                     "dangan_vs_hashlib": ours_s / hashed["median_s"],
                     "runs": {"dangan": ours, "bagit": baseline, "hashlib": hashed["runs_s"]}})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--small", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--profile", action="store_true",
                        help="Instead of timing, ingest each set once (no flush) under cProfile "
                             "and print where the time went.")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dangan-bench-", dir=args.workdir))
    if args.profile:
        try:
            big, small = work / "big", work / "small"
            make_big_file(big, args.big_mib << 20)
            make_small_files(small, args.small)
            for name, source in ((f"{args.big_mib} MiB", big), (f"{args.small} x 4 KiB", small)):
                print(f"== ingest of {name}, no flush; load {os.getloadavg()[0]:.2f}")
                profiled(True, lambda: dangan_ingest(source, work / f"home-{source.name}", False))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return
    try:
        big, small = work / "big", work / "small"
        make_big_file(big, args.big_mib << 20)
        make_small_files(small, args.small)
        rows = run_set(f"a: 1 file of {args.big_mib} MiB", big, work / "a", args.repeat)
        rows += run_set(f"b: {args.small} files of 4 KiB", small, work / "b", args.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    path = save("ingest", {"machine": machine(), "rows": rows,
                           "command": "python -m bench.ingest_bench "
                                      f"--big-mib {args.big_mib} --small {args.small} "
                                      f"--repeat {args.repeat}"})
    header = ["set", "flush", "dangan s", "bagit s", "hashlib s", "bagit/dangan",
              "dangan/hashlib", "load"]
    print(table([header] + [[r["set"], "yes" if r["flush"] else "no", f"{r['dangan_s']:.2f}",
                             f"{r['bagit_s']:.2f}", f"{r['hashlib_s']:.2f}",
                             f"{r['speedup_vs_bagit']:.2f}x", f"{r['dangan_vs_hashlib']:.2f}x",
                             f"{r['load_avg_1min']:.2f}"]
                            for r in rows]))
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
