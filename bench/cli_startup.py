"""How fast the command line answers, against the interpreter's own start and a baseline tree.

Measured, each command run ``--repeat`` times interleaved with the others (best and median
wall seconds of the whole process, as an archivist's script sees it):

  python -c pass                  the interpreter alone (the floor)
  python -c "import click"        the interpreter and the CLI library
  dangan --help                   target <= 0.3 s
  dangan show AIP                 target <= 0.6 s (a household volume of the sample holding)
  dangan search 因病              target <= 0.6 s
  dangan storage status --no-check
  dangan audit --dry-run
  dangan audit --aip BIG          a full check of a 1 GiB AIP, end to end; target <= 1.3 x
  bagit.py --validate --processes 2 BIG   (bagit-python on the same bag, the baseline)

With ``--baseline DIR`` (another checkout with its own ``.venv``, e.g. the commit before a
change: ``git worktree add /tmp/before <commit> && make -C /tmp/before install``) the same
commands run from that tree too, each tree on a home it built itself, in the same run.

Reproduce:  python -m bench.cli_startup [--repeat 7] [--households 10] [--big-mib 1024]
            [--baseline DIR] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import machine, make_big_file, save, table

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"dangan --help": 0.3, "dangan show AIP": 0.6, "dangan search 因病": 0.6}


def _tree_bin(tree: Path) -> Path:
    return tree / ".venv" / "bin"


def build_home(tree: Path, work: Path, households: int, big_mib: int) -> tuple[Path, str, str]:
    """A home made by ``tree``'s own code: the sample holding and one AIP of ``big_mib`` MiB.

    Returns (home, a household volume's AIP, the big AIP). Each tree builds its own home, so
    a baseline reads a catalogue of its own schema."""
    home = work / "home"
    transfer = work / "transfer"
    env = {**_clean_env(), "DANGAN_HOME": str(home)}
    dangan = str(_tree_bin(tree) / "dangan")
    subprocess.run([dangan, "sample-transfer", str(transfer), "--households", str(households),
                    "--seed", "1"], env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([dangan, "ingest", str(transfer)], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    found = subprocess.run([dangan, "search", "户主", "--json"], env=env, check=True,
                           capture_output=True, text=True).stdout
    household = next(h["aip"] for h in json.loads(found)["hits"]
                     if (h["archival_code"] or "").count("-") >= 2)
    payload = work / "payload"
    make_big_file(payload, big_mib << 20)
    stored = subprocess.run(
        [str(_tree_bin(tree) / "python"), "-c",
         "import sys; from pathlib import Path; from bench.audit import store_as_aip; "
         "print(store_as_aip(Path(sys.argv[1]), Path(sys.argv[2]))[0])", str(payload), str(home)],
        cwd=tree, env=env, check=True, capture_output=True, text=True).stdout
    shutil.rmtree(payload)
    return home, household, stored.strip().splitlines()[-1]


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DANGAN_")}


def commands(tree: Path, home: Path, household: str, big: str) -> dict[str, list[str]]:
    """The measured command lines of one tree."""
    python, dangan = str(_tree_bin(tree) / "python"), str(_tree_bin(tree) / "dangan")
    return {
        "python -c pass": [python, "-c", "pass"],
        'python -c "import click"': [python, "-c", "import click"],
        "dangan --help": [dangan, "--help"],
        "dangan show AIP": [dangan, "show", household],
        "dangan search 因病": [dangan, "search", "因病"],
        "dangan storage status --no-check": [dangan, "storage", "status", "--no-check"],
        "dangan audit --dry-run": [dangan, "audit", "--dry-run"],
        "dangan audit --aip BIG": [dangan, "audit", "--aip", big, "--no-repair", "--json"],
        "bagit.py --validate --processes 2 BIG": [
            python, str(_tree_bin(tree) / "bagit.py"), "--validate", "--processes", "2",
            str(home / "aips" / big)],
    }


def run_once(command: list[str], home: Path) -> float:
    env = {**_clean_env(), "DANGAN_HOME": str(home), "DANGAN_AUDIT_COLD_READ": "false"}
    start = time.perf_counter()
    done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, check=False)
    elapsed = time.perf_counter() - start
    # storage status exits 1 when a copy is missing; anything else is a failure to report
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {done.stderr[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--households", type=int, default=10)
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--baseline", type=Path, help="another checkout with its own .venv")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dangan-bench-cli-", dir=args.workdir))
    try:
        sides = {"now": ROOT}
        if args.baseline:
            sides["baseline"] = args.baseline.resolve()
        homes = {side: build_home(tree, work / side, args.households, args.big_mib)
                 for side, tree in sides.items()}
        plans = {side: commands(tree, *homes[side]) for side, tree in sides.items()}
        times: dict[tuple[str, str], list[float]] = {}
        loads = []
        for _ in range(args.repeat):
            loads.append(os.getloadavg()[0])
            for side, plan in plans.items():
                for name, command in plan.items():
                    times.setdefault((side, name), []).append(run_once(command, homes[side][0]))
        results = []
        bagit = {side: min(times[(side, "bagit.py --validate --processes 2 BIG")])
                 for side in plans}
        rows = [["command", *[f"{side} best / median s" for side in plans], "target"]]
        for name in plans["now"]:
            line = [name]
            entry = {"command": name}
            for side in plans:
                runs = times[(side, name)]
                entry[side] = {"best_s": round(min(runs), 3),
                               "median_s": round(statistics.median(runs), 3),
                               "runs_s": [round(t, 3) for t in runs]}
                cell = f"{min(runs):.3f} / {statistics.median(runs):.3f}"
                if name == "dangan audit --aip BIG":
                    ratio = min(runs) / bagit[side]
                    entry[side]["x_bagit"] = round(ratio, 2)
                    cell += f" ({ratio:.2f}x bagit)"
                line.append(cell)
            target = TARGETS.get(name)
            if name == "dangan audit --aip BIG":
                line.append("<= 1.3x bagit")
                entry["met"] = entry["now"]["x_bagit"] <= 1.3
            elif target is not None:
                line.append(f"<= {target} s")
                entry["met"] = entry["now"]["best_s"] <= target
            else:
                line.append("")
            rows.append(line)
            results.append(entry)
        print(table(rows))
        print(f"load average (1 min) at each round: {', '.join(f'{x:.2f}' for x in loads)}")
        path = save("cli_startup", {"machine": machine(), "repeat": args.repeat,
                                    "households": args.households, "big_mib": args.big_mib,
                                    "baseline": str(args.baseline) if args.baseline else None,
                                    "load_avg_per_round": loads, "results": results,
                                    "command": " ".join(["python -m bench.cli_startup",
                                                         *sys.argv[1:]])})
        print(f"results: {path}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
