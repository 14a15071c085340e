"""What Dangan writes is its owner's alone — the catalogue and its WAL, the PII key, staging,
reports, logs, stored AIPs — whatever the umask of whoever started it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from transfers import small_transfer

from storage.catalogue.database import Catalogue
from storage.locations.filesystem import FilesystemLocation
from storage.locations import private_dir

DANGAN = [sys.executable, "-c", "import sys, dangan; sys.exit(dangan.main())"]


def _open_to_others(root: Path) -> list[str]:
    """Everything under ``root`` (itself included) with a group or other permission bit."""
    wide = []
    for path in [root, *root.rglob("*")]:
        st = path.lstat()
        if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o077:
            wide.append(f"{path.relative_to(root.parent)} {stat.filemode(st.st_mode)}")
    return wide


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    def wide_umask() -> None:
        os.umask(0o022)             # the usual default: files 0644, folders 0755

    return subprocess.run([*DANGAN, *args], env=env, capture_output=True, text=True,
                          timeout=300, preexec_fn=wide_umask)


def test_nothing_dangan_writes_is_readable_by_others(tmp_path):
    home = tmp_path / "home"            # created by Dangan itself
    env = {k: v for k, v in os.environ.items() if not k.startswith("DANGAN_")}
    env.update(DANGAN_HOME=str(home), DANGAN_FULLTEXT_OCR="false", DANGAN_STORAGE_FSYNC="false")
    transfer = small_transfer(tmp_path / "t", rows=2)
    ingested = _run(env, "ingest", str(transfer), "--json")
    assert ingested.returncode == 0, ingested.stderr
    assert _run(env, "audit", "--all").returncode == 0
    assert _run(env, "audit", "report").returncode == 0
    assert _run(env, "get", "no-such-aip", "-o", str(tmp_path / "x")).returncode != 0

    for name in ("catalogue.db", "pii.key", "staging", "reports", "aips"):
        assert (home / name).exists(), name
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "catalogue.db").stat().st_mode) == 0o600
    assert _open_to_others(home) == []


def test_a_catalogue_and_a_stored_copy_are_private_even_in_process(tmp_path, bag):
    source, expected = bag
    previous = os.umask(0o022)
    try:
        catalogue = Catalogue(f"sqlite:///{tmp_path}/db/catalogue.db")
        catalogue.upgrade()
        catalogue.audit("test", "note", "x")
        location = FilesystemLocation("local", tmp_path / "store", fsync=False)
        location.put_aip("0c9f6c1e-7d6b-4c1a-9f1e-3b0d2a6f5e44", source, expected)
        location.write_admin_object("anchor.json", b"{}")
        private_dir(tmp_path / "reports" / "one" / "two")
    finally:
        os.umask(previous)
    for root in ("db", "store", "reports"):
        assert _open_to_others(tmp_path / root) == [], root
    assert not _open_to_others(tmp_path / "db") and any((tmp_path / "db").glob("*-wal"))
    catalogue.engine.dispose()
