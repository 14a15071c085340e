"""Helpers shared by the benchmarks: data sets, timing, page-cache control, result tables."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).with_name("results")


def make_big_file(folder: Path, size: int, name: str = "big.bin") -> Path:
    """One file of ``size`` random bytes (written in 64 MiB blocks)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    block = os.urandom(64 << 20)
    with open(path, "wb") as handle:
        remaining = size
        while remaining:
            chunk = block[:min(remaining, len(block))]
            handle.write(chunk)
            remaining -= len(chunk)
    return path


def make_small_files(folder: Path, count: int, size: int = 4096, per_dir: int = 1000) -> None:
    """``count`` files of ``size`` random bytes, ``per_dir`` per sub-folder."""
    for index in range(count):
        sub = folder / f"d{index // per_dir:03d}"
        if index % per_dir == 0:
            sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{index:06d}.bin").write_bytes(os.urandom(size))


def drop_cache(folder: Path) -> None:
    """Evict a folder's files from the page cache (after a sync), so reads hit the disk."""
    os.sync()
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def timed(func: Callable[[], object], repeat: int, setup: Callable[[], object] | None = None) -> dict:
    """Median and all wall-clock times of ``func`` over ``repeat`` runs (setup untimed)."""
    times = []
    for _ in range(repeat):
        if setup:
            setup()
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "runs_s": [round(t, 3) for t in times]}


def profiled(enabled: bool, func: Callable[[], object], top: int = 30) -> object:
    """Run ``func``; with ``enabled``, under cProfile, printing the ``top`` functions by
    cumulative and by own time (the main thread only: threads and child processes are
    not seen; use ``py-spy record --subprocesses --idle`` for those)."""
    if not enabled:
        return func()
    import cProfile
    import pstats

    profile = cProfile.Profile()
    profile.enable()
    try:
        return func()
    finally:
        profile.disable()
        stats = pstats.Stats(profile)
        stats.sort_stats("cumulative").print_stats(top)
        stats.sort_stats("tottime").print_stats(top)


def machine() -> dict:
    """What the figures were measured on."""
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "machine": platform.machine(), "load_avg": os.getloadavg()}


def save(name: str, data: dict) -> Path:
    """Write results to bench/results/<name>.json and return the path."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def table(rows: list[list[str]]) -> str:
    """A plain text table."""
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows)
