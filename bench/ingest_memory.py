"""Peak memory of an ingest of many tiny files: the whole process tree (the ingest process
and its Siegfried child), measured by GNU time around a fresh interpreter.

Generated files of 16 bytes each (a counter: the same in every run), 1,000 per
folder. Reported beside the figure: the same-run peak RSS of ``python -c pass`` (the
interpreter floor) and of an ingest of 1,000 files (the fixed cost of the imports), so the
per-file cost is the difference; and the wall time with the load average.

Reproduce:  python -m bench.ingest_memory [--files 1000000] [--workdir DIR]
            python -m bench.ingest_memory --tracemalloc 20000   (in one process: the Python
            objects alive when the catalogue commit starts, the largest allocation sites)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import machine, save, table

CHILD = """
import sys
from pathlib import Path
from ingest.pipeline import Ingester
from policies import load_settings
result = Ingester(load_settings(Path(sys.argv[1]), environ={"DANGAN_STORAGE_FSYNC": "false"})).ingest(Path(sys.argv[2]))
if result.status != "accepted":
    raise SystemExit(f"ingest {result.status}: {result.failures[:3]}")
"""


def make_tiny_files(folder: Path, count: int, size: int = 16, per_dir: int = 1000) -> None:
    for index in range(count):
        sub = folder / f"d{index // per_dir:04d}"
        if index % per_dir == 0:
            sub.mkdir(parents=True, exist_ok=True)
        # distinct bytes that no signature matches (Binary File by extension, an accepted format)
        (sub / f"f{index:07d}.bin").write_bytes(b"\0\1" + index.to_bytes(size - 2, "big"))


def tree_peak(command: list[str]) -> tuple[float, int, int]:
    """(wall seconds, peak RSS of the process tree in KiB, sum of each process's own peak
    in KiB).

    GNU time reports the largest single process of the tree (``%M`` of the waited-for
    children is the maximum, not the sum), so the tree is sampled from /proc every 50 ms
    while the command runs: the first figure is the largest sum of the processes' resident
    sets at one moment (what the machine must hold), the second adds up each process's
    own high-water mark (VmHWM) whenever it was reached (an upper bound: the Siegfried
    child has ended before the ingest process reaches its peak)."""
    errors = tempfile.TemporaryFile()   # not a pipe: a full pipe would stop the ingest
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
    peaks: dict[int, int] = {}
    together = 0
    while child.poll() is None:
        now = 0
        for pid in _tree(child.pid):
            try:
                with open(f"/proc/{pid}/status") as status:
                    for line in status:
                        if line.startswith("VmHWM:"):
                            peaks[pid] = max(peaks.get(pid, 0), int(line.split()[1]))
                        elif line.startswith("VmRSS:"):
                            now += int(line.split()[1])
            except OSError:
                pass
        together = max(together, now)
        time.sleep(0.05)
    wall = time.perf_counter() - start
    if child.returncode != 0:
        errors.seek(0)
        raise RuntimeError(f"{command[:3]} failed: {errors.read().decode()[-800:]}")
    return wall, max(together, max(peaks.values(), default=0)), sum(peaks.values())


def _gnu_time_peak(command: list[str]) -> int:
    """Peak RSS in KiB of a short command (GNU time: /proc sampling would miss it)."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as out:
        subprocess.run(["/usr/bin/time", "-f", "%M", "-o", out.name, *command], check=True)
        return int(out.read().split()[-1])


def _tree(root: int) -> list[int]:
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as children:
                todo += [int(c) for c in children.read().split()]
        except OSError:
            pass
    return found


def allocation_sites(count: int, workdir: Path | None, top: int = 25) -> None:
    """Ingest ``count`` tiny files in this process under tracemalloc and print the
    allocation sites of what is alive when the catalogue commit starts (the point where
    every per-file object of the run is held) and the traced peak."""
    import tracemalloc

    from ingest.pipeline import Ingester
    from policies import load_settings

    work = Path(tempfile.mkdtemp(prefix="dangan-bench-memory-", dir=workdir))
    try:
        make_tiny_files(work / "tiny", count)
        ingester = Ingester(load_settings(work / "home", environ={"DANGAN_STORAGE_FSYNC": "false"}))
        snapshots = []
        commit = ingester._commit

        def at_commit(*args, **kwargs):
            snapshots.append(tracemalloc.take_snapshot())
            return commit(*args, **kwargs)

        ingester._commit = at_commit   # type: ignore[method-assign]
        tracemalloc.start(4)
        result = ingester.ingest(work / "tiny")
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        if result.status != "accepted":
            raise SystemExit(f"ingest {result.status}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    stats = snapshots[0].statistics("lineno")
    total = sum(s.size for s in stats)
    print(f"{count} files, load {os.getloadavg()[0]:.2f}: traced peak {peak / 2**20:.1f} MiB; "
          f"alive at the commit {total / 2**20:.1f} MiB ({total / count:.0f} B per file)")
    for stat in stats[:top]:
        frame = stat.traceback[0]
        print(f"{stat.size / 2**20:8.2f} MiB {stat.count:9d} blocks  "
              f"{frame.filename}:{frame.lineno}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--tracemalloc", type=int, metavar="FILES", default=0,
                        help="instead: allocation sites of an in-process ingest of FILES files")
    args = parser.parse_args()
    if args.tracemalloc:
        allocation_sites(args.tracemalloc, args.workdir)
        return
    work = Path(tempfile.mkdtemp(prefix="dangan-bench-memory-", dir=args.workdir))
    rows = []
    try:
        for count in sorted({1000, args.files}):
            source = work / f"tiny-{count}"
            make_tiny_files(source, count)
            home = work / f"home-{count}"
            load = os.getloadavg()[0]
            wall, peak, peaks = tree_peak([sys.executable, "-c", CHILD, str(home), str(source)])
            rows.append({"files": count, "peak_rss_MiB": round(peak / 1024, 1),
                         "sum_of_process_peaks_MiB": round(peaks / 1024, 1),
                         "wall_s": round(wall, 2), "files_per_s": round(count / wall),
                         "load_avg_1min": round(load, 2)})
            shutil.rmtree(source, ignore_errors=True)
            shutil.rmtree(home, ignore_errors=True)
        floor = _gnu_time_peak([sys.executable, "-c", "pass"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    per_file = ((rows[-1]["peak_rss_MiB"] - rows[0]["peak_rss_MiB"]) * 1024 * 1024
                / max(1, rows[-1]["files"] - rows[0]["files"]))
    command = f"python -m bench.ingest_memory --files {args.files}"
    path = save(f"ingest_memory_{args.files}", {
        "machine": machine(), "rows": rows, "python_pass_peak_MiB": round(floor / 1024, 1),
        "bytes_per_extra_file": round(per_file), "command": command})
    print(table([["files", "peak RSS MiB (tree at one moment)", "sum of process peaks MiB",
                  "wall s", "files/s", "load"]]
                + [[r["files"], r["peak_rss_MiB"], r["sum_of_process_peaks_MiB"], r["wall_s"],
                    r["files_per_s"], r["load_avg_1min"]] for r in rows]))
    print(f"python -c pass: {floor / 1024:.1f} MiB; about {per_file:.0f} bytes per extra file")
    print(f"\n{command}\nresults: {path}")


if __name__ == "__main__":
    main()
