"""Ingest of the sample transfer without and with normalisation at ingest, and normalising
later with ``dangan migrate`` instead, on the same transfer in one run.

Compared (each in a fresh home, ``dangan ingest`` as a subprocess, the same transfer; the
two ingests alternate, ``--repeat`` times each, and the median is reported):
  off        ``DANGAN_NORMALISE_AT_INGEST=false``: no derivatives made
  on         ``DANGAN_NORMALISE_AT_INGEST=true``: the preservation policy's derivatives made
             and checked during ingest (LibreOffice, Ghostscript, OCRmyPDF, Pillow)
  later      ingest with it off, then ``dangan migrate --puid P`` for every PUID of the
             holdings that a rule converts (one new version per affected AIP and PUID)
For each: wall time, derivatives kept (catalogue rows under data/preservation/ and
data/access/ of the newest versions), and, for ``on``, the seconds above ``off`` per
conversion tried. A run whose derivatives are 0 although the policy asks for some is reported as such
(normalisation did not run), never as a figure.

Reproduce:  .venv/bin/python -m bench.ingest_normalise [--households 5] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import machine, save, table

TREE = Path(__file__).resolve().parents[1]


def _env(home: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DANGAN_")}
    env["DANGAN_HOME"] = str(home)
    env.update(extra)
    return env


def _dangan(home: Path, args: list[str], extra: dict[str, str]) -> tuple[float, dict]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(TREE / "dangan.py"), *args, "--json"],
                          capture_output=True, text=True, env=_env(home, extra))
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1) or not done.stdout.strip():
        raise RuntimeError(f"dangan {' '.join(args)} failed ({done.returncode}): "
                           f"{done.stderr[-2000:]}")
    return seconds, json.loads(done.stdout)


def _derivatives(home: Path, extra: dict[str, str]) -> tuple[int, dict]:
    """Derivatives kept in the newest versions, and the register's pending counts."""
    _, report = _dangan(home, ["formats", "report"], extra)
    kept = sum(d["files"] for d in report["derivatives"])
    pending = {r["puid"]: r["without_preservation_copy_the_rule_asks_for"]
               + r["without_access_copy_the_rule_asks_for"] for r in report["formats"]}
    return kept, {p: n for p, n in pending.items() if n}


def _ingest(transfer: Path, home: Path, at_ingest: bool) -> dict:
    home.mkdir(parents=True)
    extra = {"DANGAN_NORMALISE_AT_INGEST": "true" if at_ingest else "false"}
    seconds, result = _dangan(home, ["ingest", str(transfer)], extra)
    if result.get("status") != "accepted":
        raise RuntimeError(f"ingest not accepted: {result.get('status')}")
    kept, pending = _derivatives(home, extra)
    return {"seconds": seconds, "aips": len(result.get("aips", [])), "derivatives": kept,
            "pending": pending}


def _later(transfer: Path, home: Path) -> dict:
    run = _ingest(transfer, home, False)
    extra = {"DANGAN_NORMALISE_AT_INGEST": "false"}
    migrate_seconds, versions, failed = 0.0, 0, 0
    for puid in sorted(run["pending"]):
        seconds, result = _dangan(home, ["migrate", "--puid", puid], extra)
        migrate_seconds += seconds
        versions += sum(1 for a in result["aips"] if a["version"])
        failed += sum(1 for a in result["aips"] for f in a["files"] if f["state"] != "passed")
    kept, pending = _derivatives(home, extra)
    return {"seconds": run["seconds"] + migrate_seconds, "ingest_seconds": run["seconds"],
            "migrate_seconds": migrate_seconds, "aips": run["aips"], "derivatives": kept,
            "new_versions": versions, "conversions_not_kept": failed, "pending": pending}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    from ingest import sample_transfer

    runs: dict[str, list[dict]] = {"off": [], "on": [], "later": []}
    with tempfile.TemporaryDirectory(prefix="dangan-bench-ingest-normalise-") as tmp:
        work = Path(tmp)
        transfer = work / "transfer"
        sample_transfer.generate(transfer, households=args.households)
        files = sum(1 for p in transfer.rglob("*") if p.is_file())
        for n in range(args.repeat):
            order = [("off", False), ("on", True)] if n % 2 == 0 else [("on", True),
                                                                        ("off", False)]
            for name, at_ingest in order:
                runs[name].append(_ingest(transfer, work / f"home-{name}-{n}", at_ingest))
                print(f"{name} #{n + 1}: {runs[name][-1]['seconds']:.1f} s, "
                      f"{runs[name][-1]['derivatives']} derivatives", file=sys.stderr)
        runs["later"].append(_later(transfer, work / "home-later"))
        print(f"later: {runs['later'][-1]['seconds']:.1f} s", file=sys.stderr)
    median = {k: statistics.median(r["seconds"] for r in v) for k, v in runs.items()}
    made = {k: v[-1]["derivatives"] for k, v in runs.items()}
    asked = sum(runs["off"][-1]["pending"].values())
    print(f"sample transfer, {args.households} households, {files} files; the policy asks "
          f"{asked} derivatives of it")
    rows = [["run", "median s", "derivatives kept", "x off"]]
    for name in ("off", "on", "later"):
        rows.append([name, f"{median[name]:.1f}", str(made[name]),
                     f"{median[name] / median['off']:.2f}"])
    print(table(rows))
    notes = []
    for name in ("on", "later"):
        if asked and not made[name]:
            notes.append(f"{name}: no derivative kept although the policy asks {asked}: "
                         "normalisation did not run")
    if made["on"] and asked:
        extra = median["on"] - median["off"]
        print(f"normalisation at ingest: {extra:.1f} s above 'off', {extra / asked:.2f} s per "
              f"conversion tried ({asked}), {made['on']} kept; the others failed a check "
              "(see the receipt report's DG-3-2)")
    later = runs["later"][-1]
    print(f"later: ingest {later['ingest_seconds']:.1f} s + migrate {later['migrate_seconds']:.1f} s, "
          f"{later['new_versions']} new versions, {later['conversions_not_kept']} conversions "
          "not kept")
    for note in notes:
        print(f"NOTE {note}")
    data = {"households": args.households, "repeat": args.repeat, "files": files,
            "asked": asked, "median_seconds": median, "runs": runs, "notes": notes,
            "machine": machine()}
    print(f"saved {save('ingest_normalise', data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
