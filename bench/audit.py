"""Full fixity audits against their baselines, on the same bytes, in one run.

Data sets (each stored as one AIP bag at a filesystem location of a Dangan home):
  a  one file of 1 GiB
  b  four files of 256 MiB
  c  20,000 files of 4 KiB
Compared, each on the same stored bag, all reading from a warm page cache (Dangan's
``cold_read`` is switched off so that every contender reads the same cached bytes):
  dangan   ``dangan audit --aip UUID --no-repair --json``: a full check of the copy, end to end
           (process start, catalogue, listing, every byte read and hashed, comparison with
           the catalogue and the bag's manifests, PREMIS event and audit log); the run's own
           figure without process start-up is reported too ("engine")
  bagit    ``bagit.py --validate --processes 2 BAG`` (bagit-python, same algorithm: sha256)
  limit    the hashing limit: sha256 over the same number of bytes from memory, one hashlib
           stream per core that the set can use (a single file with one algorithm: one
           stream; several files: two streams, one per core, in two processes)
Each contender runs ``--repeat`` times, interleaved. Reported: the best time of each (the
machine may be shared: the best run is the least disturbed), and the median of the ratios of
runs made one right after the other (under about the same load); CPU seconds (user + system
of the whole process tree, from GNU time) and peak RSS of the largest process too.

Reproduce:  python -m bench.audit [--repeat 5] [--small 20000] [--workdir DIR] [--keep]
            [--profile]   (cProfile top functions of one audit of each set instead of timings)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid as uuidlib
from datetime import UTC, datetime
from pathlib import Path

import bagit

from bench.common import machine, make_big_file, make_small_files, save, table

MiB = 1 << 20


# -- data ------------------------------------------------------------------------------------

def make_sets(work: Path, small: int) -> dict[str, Path]:
    """Payload folders of the three sets."""
    sets = {"a: 1 x 1 GiB": work / "payload-a", "b: 4 x 256 MiB": work / "payload-b",
            f"c: {small} x 4 KiB": work / "payload-c"}
    folders = list(sets.values())
    make_big_file(folders[0], 1024 * MiB)
    for index in range(4):
        make_big_file(folders[1], 256 * MiB, name=f"part-{index}.bin")
    make_small_files(folders[2], small)
    return sets


def store_as_aip(payload: Path, home: Path) -> tuple[str, int]:
    """Make the payload a BagIt bag at the home's default location and catalogue it as an
    AIP with one verified copy (as ingest would have left it). Returns (uuid, bytes)."""
    from sqlalchemy import insert

    from policies import load_settings
    from storage.catalogue import models as m
    from storage.catalogue import Catalogue

    uuid = str(uuidlib.uuid4())
    bag_dir = home / "aips" / uuid
    shutil.copytree(payload, bag_dir)
    bagit.make_bag(str(bag_dir), checksums=["sha256"], processes=2)
    settings = load_settings(home, environ={})
    catalogue = Catalogue.open(settings)
    now = datetime.now(UTC)
    rows, total = [], 0
    for path in sorted(p for p in bag_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(bag_dir).as_posix()
        with open(path, "rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        size = path.stat().st_size
        total += size
        rows.append({"aip_uuid": uuid, "key": f"file-{len(rows) + 1:06d}", "path": rel,
                     "original_name": path.name, "size": size, "sha256": digest,
                     "digests": {"sha256": digest}, "use": "original"})
    with catalogue.session() as s:
        s.add(m.Transfer(id=uuid, fingerprint=uuid.replace("-", ""), source=str(payload),
                         profile="bench", status="accepted", received_at=now, plan={},
                         summary={}))
        s.flush()
        s.add(m.Aip(uuid=uuid, transfer_id=uuid, label=f"bench {payload.name}",
                    status="UPLOADED", profile="bench", created_at=now, size=total,
                    file_count=len(rows), record={}))
        s.flush()
        s.execute(insert(m.File), rows)
        s.add(m.Copy(aip_uuid=uuid, location="local", url=bag_dir.as_uri(), status="verified",
                     verified_at=now, bytes=total))
    catalogue.engine.dispose()
    return uuid, total


# -- contenders ------------------------------------------------------------------------------

def _run(command: list[str], env: dict[str, str] | None = None,
         capture: bool = False) -> tuple[float, int, str, int, float]:
    """Run a command; return (wall seconds, exit status, stdout, peak RSS in KiB of its
    largest process, CPU seconds of it and its children). GNU time measures the last two,
    starting the command from a small process: a child forked straight from this one would
    inherit this process's peak."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as usage_file:
        timed = ["/usr/bin/time", "-f", "%M %U %S", "-o", usage_file.name, *command]
        start = time.perf_counter()
        done = subprocess.run(timed, env=env, stdout=subprocess.PIPE if capture
                              else subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
                              check=False)
        wall = time.perf_counter() - start
        peak, user, system = usage_file.read().strip().splitlines()[-1].split()
    return wall, done.returncode, done.stdout or "", int(peak), float(user) + float(system)


def run_dangan(home: Path, uuid: str, total: int) -> tuple[float, float, int, float]:
    """Wall time of the CLI, the run's own time, peak RSS and CPU seconds; checks that
    every byte was read."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DANGAN_")}
    env.update(DANGAN_HOME=str(home), DANGAN_AUDIT_COLD_READ="false")
    wall, code, out, rss, cpu = _run([sys.executable, "-m", "dangan", "audit", "--aip", uuid,
                                      "--no-repair", "--json"], env, capture=True)
    if code != 0:
        raise RuntimeError(f"dangan audit failed ({code})")
    result = json.loads(out)
    [check] = result["checks"]
    assert check["outcome"] == "pass" and check["bytes_read"] == total, check
    return wall, float(result["summary"]["seconds"]), rss, cpu


def run_bagit(bag: Path) -> tuple[float, int, float]:
    """Wall time, peak RSS and CPU seconds of ``bagit.py --validate --processes 2``."""
    script = shutil.which("bagit.py") or str(Path(sys.executable).with_name("bagit.py"))
    wall, code, _out, rss, cpu = _run([sys.executable, script, "--validate", "--processes", "2",
                                       str(bag)])
    if code != 0:
        raise RuntimeError(f"bagit.py --validate failed ({code})")
    return wall, rss, cpu


def _hash_from_memory(count: int, ready, go, out) -> None:
    block = os.urandom(MiB)
    ready.set()
    go.wait()
    digest = hashlib.sha256()
    for _ in range(count // MiB):
        digest.update(block)
    digest.update(block[: count % MiB])
    out.put(digest.hexdigest())


def hashing_limit(total: int, streams: int) -> float:
    """Seconds to sha256 ``total`` bytes from memory in ``streams`` parallel processes."""
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    go = context.Event()
    share = [total // streams + (1 if i < total % streams else 0) for i in range(streams)]
    workers = []
    for count in share:
        ready = context.Event()
        process = context.Process(target=_hash_from_memory, args=(count, ready, go, out))
        process.start()
        ready.wait()
        workers.append(process)
    start = time.perf_counter()
    go.set()
    for _ in workers:
        out.get()
    elapsed = time.perf_counter() - start
    for process in workers:
        process.join()
    return elapsed


def profile_audits(work: Path, small: int) -> None:
    """Each set audited once through the CLI's code in this process, under cProfile."""
    from click.testing import CliRunner

    from bench.common import profiled
    import dangan

    for name, payload in make_sets(work, small).items():
        home = work / f"home-{payload.name[-1]}"
        uuid, _total = store_as_aip(payload, home)
        shutil.rmtree(payload)
        os.environ.update(DANGAN_HOME=str(home), DANGAN_AUDIT_COLD_READ="false")
        print(f"== dangan audit --aip of {name}; load {os.getloadavg()[0]:.2f}")
        result = profiled(True, lambda: CliRunner().invoke(
            dangan.cli, ["audit", "--aip", uuid, "--no-repair", "--json"]))
        if result.exit_code != 0:
            raise RuntimeError(f"dangan audit failed: {result.output[-500:]}")


# -- the run ---------------------------------------------------------------------------------

def bench(work: Path, small: int, repeat: int) -> list[dict]:
    """Build the sets, run every contender ``repeat`` times (interleaved), return rows."""
    prepared = []
    for name, payload in make_sets(work, small).items():
        home = work / f"home-{payload.name[-1]}"
        uuid, total = store_as_aip(payload, home)
        shutil.rmtree(payload)
        streams = 1 if name.startswith("a") else 2
        prepared.append((name, home, uuid, total, streams))
    times: dict[str, dict[str, list[float]]] = {
        p[0]: {k: [] for k in ("dangan", "engine", "bagit", "limit", "dangan_cpu", "bagit_cpu")}
        for p in prepared}
    rss: dict[str, dict[str, int]] = {p[0]: {"dangan": 0, "bagit": 0} for p in prepared}
    for _ in range(repeat):
        for name, home, uuid, total, streams in prepared:
            wall, engine, peak, cpu = run_dangan(home, uuid, total)
            times[name]["dangan"].append(wall)
            times[name]["engine"].append(engine)
            times[name]["dangan_cpu"].append(cpu)
            rss[name]["dangan"] = max(rss[name]["dangan"], peak)
            wall, peak, cpu = run_bagit(home / "aips" / uuid)
            times[name]["bagit"].append(wall)
            times[name]["bagit_cpu"].append(cpu)
            rss[name]["bagit"] = max(rss[name]["bagit"], peak)
            times[name]["limit"].append(hashing_limit(total, streams))
    return [_row(name, total, streams, times[name], rss[name])
            for name, _home, _uuid, total, streams in prepared]


def _paired(numerator: list[float], denominator: list[float]) -> float:
    """Median of the ratios of runs made one after the other (under the same load)."""
    return statistics.median(n / d for n, d in zip(numerator, denominator))


def _row(name: str, total: int, streams: int, runs: dict[str, list[float]],
         rss: dict[str, int]) -> dict:
    best = {k: min(v) for k, v in runs.items()}
    return {
        "set": name, "bytes": total, "hash_streams_in_limit": streams,
        "best_s": best, "median_s": {k: statistics.median(v) for k, v in runs.items()},
        "runs_s": {k: [round(x, 3) for x in v] for k, v in runs.items()},
        "speedup_vs_bagit": best["bagit"] / best["dangan"],
        "engine_speedup_vs_bagit": best["bagit"] / best["engine"],
        "share_of_hashing_limit": best["limit"] / best["dangan"],
        "engine_share_of_hashing_limit": best["limit"] / best["engine"],
        "paired_median": {
            "bagit/dangan": _paired(runs["bagit"], runs["dangan"]),
            "bagit/engine": _paired(runs["bagit"], runs["engine"]),
            "limit/dangan": _paired(runs["limit"], runs["dangan"]),
            "limit/engine": _paired(runs["limit"], runs["engine"]),
            "bagit_cpu/dangan_cpu": _paired(runs["bagit_cpu"], runs["dangan_cpu"]),
        },
        "dangan_MiB_s": total / MiB / best["dangan"],
        "peak_rss_MiB": {k: round(v / 1024, 1) for k, v in rss.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--small", type=int, default=20000)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="Keep the data sets afterwards.")
    parser.add_argument("--profile", action="store_true",
                        help="Instead of timing, audit each set once under cProfile (in this "
                             "process) and print where the time went.")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dangan-bench-audit-", dir=args.workdir))
    if args.profile:
        try:
            profile_audits(work, args.small)
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
        return
    try:
        rows = bench(work, args.small, args.repeat)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    command = f"python -m bench.audit --repeat {args.repeat} --small {args.small}"
    path = save("audit", {"machine": machine(), "rows": rows, "command": command,
                          "note": "best of the interleaved runs; warm page cache for all"})
    header = ["set", "dangan s", "engine s", "bagit s", "limit s", "bagit/dangan",
              "bagit/engine", "limit/dangan", "limit/engine", "CPU s dangan/bagit",
              "RSS MiB dangan/bagit"]
    lines = [header]
    for r in rows:
        best, paired = r["best_s"], r["paired_median"]
        lines.append([r["set"], f"{best['dangan']:.2f}", f"{best['engine']:.2f}",
                      f"{best['bagit']:.2f}", f"{best['limit']:.2f}",
                      f"{r['speedup_vs_bagit']:.2f}x ({paired['bagit/dangan']:.2f}x)",
                      f"{r['engine_speedup_vs_bagit']:.2f}x ({paired['bagit/engine']:.2f}x)",
                      f"{r['share_of_hashing_limit']:.0%} ({paired['limit/dangan']:.0%})",
                      f"{r['engine_share_of_hashing_limit']:.0%} ({paired['limit/engine']:.0%})",
                      f"{best['dangan_cpu']:.2f}/{best['bagit_cpu']:.2f}",
                      f"{r['peak_rss_MiB']['dangan']:.0f}/{r['peak_rss_MiB']['bagit']:.0f}"])
    print(table(lines))
    print("\nbest of the runs; in brackets the median of the ratios of runs made one after "
          "the other (same load)")
    print(f"\n{command}\nresults: {path}")


if __name__ == "__main__":
    main()
