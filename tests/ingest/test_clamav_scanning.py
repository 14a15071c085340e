"""ClamAV: a signature database built with sigtool finds EICAR; versions are recorded; no
scanner (or a broken one) is never a clean result."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from ingest.sample_transfer import EICAR
from ingest.virus import ClamdScanner, ClamscanScanner, scanner_from_settings
from policies import load_settings

needs_clamav = pytest.mark.skipif(shutil.which("clamscan") is None or shutil.which("sigtool") is None,
                                  reason="ClamAV (clamscan, sigtool) is not installed: apt-get install clamav")


@pytest.fixture
def database(tmp_path) -> Path:
    """A signature database of the EICAR test file, made with sigtool."""
    if shutil.which("sigtool") is None:
        pytest.skip("sigtool is not installed: apt-get install clamav")
    (tmp_path / "eicar.com").write_bytes(EICAR)
    signature = subprocess.run(["sigtool", "--md5", "eicar.com"], cwd=tmp_path,
                               capture_output=True, text=True, check=True).stdout
    (tmp_path / "test.hdb").write_text(signature, encoding="ascii")
    (tmp_path / "eicar.com").unlink()
    return tmp_path / "test.hdb"


@needs_clamav
def test_clamscan_finds_eicar_and_records_its_versions(tmp_path, database):
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "附件 一.txt").write_bytes(EICAR)
    (folder / "clean.txt").write_text("脱贫攻坚", encoding="utf-8")
    result = ClamscanScanner(database=str(database)).scan(sorted(folder.iterdir()))
    assert result.ran and result.scanned == 2 and not result.error
    assert list(result.infected) == [str(folder / "附件 一.txt")]
    assert "ClamAV" in result.version and "test.hdb" in result.version and "sha256" in result.version


@needs_clamav
def test_a_broken_scanner_is_an_error_not_a_clean_scan(tmp_path, database):
    (tmp_path / "a.txt").write_text("x", encoding="utf-8")
    missing = ClamscanScanner(command="no-such-clamscan").scan([tmp_path / "a.txt"])
    assert not missing.ran and "无法运行" in missing.error
    bad_db = tmp_path / "bad.hdb"
    bad_db.write_text("this is not a signature\n", encoding="ascii")
    broken = ClamscanScanner(database=str(bad_db)).scan([tmp_path / "a.txt"])
    assert not broken.ran and broken.error and not broken.infected


def test_scanner_configuration(home, monkeypatch):
    assert scanner_from_settings(home) is None
    monkeypatch.setenv("DANGAN_ANTIVIRUS_SCANNER", "clamscan")
    monkeypatch.setenv("DANGAN_ANTIVIRUS_DATABASE", "/srv/clamav/test.hdb")
    scanner = scanner_from_settings(load_settings(home.home))
    assert isinstance(scanner, ClamscanScanner) and scanner.database == "/srv/clamav/test.hdb"
    monkeypatch.setenv("DANGAN_ANTIVIRUS_SCANNER", "avast")
    result = scanner_from_settings(load_settings(home.home)).scan([])
    assert not result.ran and "未知的扫描程序" in result.error


@needs_clamav
def test_unreachable_clamd_fails_gd_4_1(home, cli, tmp_path, monkeypatch):
    monkeypatch.setenv("DANGAN_ANTIVIRUS_SCANNER", "clamd")
    monkeypatch.setenv("DANGAN_ANTIVIRUS_CLAMD_SOCKET", str(tmp_path / "no-clamd.sock"))
    transfer = tmp_path / "t"
    transfer.mkdir()
    (transfer / "a.txt").write_text("脱贫攻坚", encoding="utf-8")
    result = cli("ingest", transfer)
    assert result.code == 1 and "GD-4-1" in result.err and "clamd" in result.err


@pytest.fixture
def clamd(tmp_path, database):
    """A clamd of our own on a unix socket, loading only the test signature database."""
    if shutil.which("clamd") is None:
        pytest.skip("clamd is not installed: apt-get install clamav-daemon")
    db = tmp_path / "db"
    db.mkdir()
    shutil.copy(database, db / "test.hdb")
    socket_path = tmp_path / "clamd.sock"
    config = tmp_path / "clamd.conf"
    config.write_text(f"Foreground yes\nLocalSocket {socket_path}\nDatabaseDirectory {db}\n"
                      f"TemporaryDirectory {tmp_path}\nLogFile {tmp_path / 'clamd.log'}\n"
                      "StreamMaxLength 64M\n", encoding="ascii")
    process = subprocess.Popen(["clamd", "-c", str(config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not socket_path.exists() and time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "clamd.log").read_text(errors="replace")
            time.sleep(0.1)
        assert socket_path.exists(), "clamd did not start within 60 s"
        yield socket_path
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_clamd_streams_files_and_finds_eicar(tmp_path, clamd):
    (tmp_path / "a.txt").write_bytes(b"clean " * 100000)
    (tmp_path / "b.txt").write_bytes(EICAR)
    result = ClamdScanner(str(clamd), timeout=60).scan([tmp_path / "a.txt", tmp_path / "b.txt"])
    assert result.ran and result.scanned == 2 and result.version.startswith("ClamAV")
    assert list(result.infected) == [str(tmp_path / "b.txt")]
    assert "eicar" in result.infected[str(tmp_path / "b.txt")].lower()
