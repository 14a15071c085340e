"""A process killed mid-ingest leaves nothing visible; the re-run finishes the job, once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import bagit
import pytest
from sqlalchemy import func, select

from storage.catalogue import models
from storage.catalogue import Catalogue
from transfers import small_transfer

DANGAN = [sys.executable, "-c", "import sys, dangan; sys.exit(dangan.main())"]


def run(home, *args: str, crash_at: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DANGAN_")}
    env["DANGAN_HOME"] = str(home.home)
    if crash_at:
        env["DANGAN_CRASH_AT"] = crash_at
    return subprocess.run([*DANGAN, *args], env=env, capture_output=True, text=True, timeout=300)


def state(home) -> tuple[int, list[str]]:
    catalogue = Catalogue.open(home)
    with catalogue.session() as s:
        catalogued = s.scalar(select(func.count()).select_from(models.Aip))
    root = home.home / "aips"
    stored = sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) \
        if root.exists() else []
    return catalogued, stored


def two_volume_transfer(path: Path) -> Path:
    transfer = small_transfer(path, rows=4)
    sheet = transfer / "归档文件目录.csv"
    text = sheet.read_text(encoding="utf-8-sig")
    # the last two rows move to a second household volume: two AIPs from one transfer
    text = text.replace("0001-003", "0002-001").replace("0001-004", "0002-002")
    sheet.write_text(text, encoding="utf-8-sig")
    return transfer


@pytest.mark.parametrize("point", ["staged", "built", "stored-one", "stored"])
def test_killed_ingest_leaves_nothing_visible_and_rerun_completes(home, tmp_path, point):
    transfer = two_volume_transfer(tmp_path / "t")
    killed = run(home, "ingest", str(transfer), crash_at=point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    catalogued, stored = state(home)
    assert catalogued == 0, "the catalogue never shows an AIP before all are stored"
    for uuid in stored:  # a copy published before the kill must be complete and valid
        bagit.Bag(str(home.home / "aips" / uuid)).validate()
    finished = run(home, "ingest", str(transfer), "--json")
    assert finished.returncode == 0, finished.stderr
    result = json.loads(finished.stdout)
    assert result["status"] == "accepted" and len(result["aips"]) == 2
    catalogued, stored = state(home)
    assert catalogued == 2 and stored == sorted(a["uuid"] for a in result["aips"])
    for uuid in stored:
        bagit.Bag(str(home.home / "aips" / uuid)).validate()
    assert not any((home.home / "aips" / ".pending").iterdir())
    again = json.loads(run(home, "ingest", str(transfer), "--json").stdout)
    assert again["status"] == "already-ingested"
    assert not [p for p in (home.home / "staging").iterdir() if p.name.startswith("run-")]


def test_kill_at_random_moments_never_leaves_a_partial_aip(home, tmp_path):
    transfer = small_transfer(tmp_path / "t", rows=2)
    big = transfer / "户卷" / "002-申请书.txt"
    with open(big, "ab") as handle:  # enough bytes that the kill lands mid-copy sometimes
        handle.write(os.urandom(48 << 20))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DANGAN_")}
    env["DANGAN_HOME"] = str(home.home)
    for delay in (0.3, 0.8, 1.5):
        process = subprocess.Popen([*DANGAN, "ingest", str(transfer)], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        catalogued, stored = state(home)
        assert catalogued in (0, 1)
        for uuid in stored:
            bagit.Bag(str(home.home / "aips" / uuid)).validate()
    finished = run(home, "ingest", str(transfer), "--json")
    assert finished.returncode == 0, finished.stderr
    catalogued, stored = state(home)
    assert catalogued == 1 and len(stored) == 1
