"""Artefactual's unmodified ``fixity`` client (0.8.0, from PyPI, in a throwaway venv) against
a live ``dangan serve``: clean repository passes, one flipped byte fails and is named,
``dangan audit`` finds and repairs the same damage, and the client passes again."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dangan_testing import throwaway_venv

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "storage"))
from fixity_support import flip_byte, payload_file

from storage.catalogue import Catalogue
from storage.fixity import apikeys

FIXITY = "fixity==0.8.0"


@pytest.fixture(scope="session")
def fixity_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment of its own with the fixity client installed from PyPI."""
    return throwaway_venv(tmp_path_factory.mktemp("fixity-client"), FIXITY)

pytest_plugins = ["fixity_fixtures"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(repo, tmp_path):
    """``dangan serve`` in a child process on a free port; its output kept in a file."""
    port = _free_port()
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DANGAN_")}
    env["DANGAN_HOME"] = str(repo.home)
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "dangan", "serve", "--port", str(port)],
                                   env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"dangan serve did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.2)
    try:
        yield f"http://127.0.0.1:{port}/", log
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _fixity(venv: Path, url: str, key: str, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", ""), "STORAGE_SERVICE_URL": url,
           "STORAGE_SERVICE_USER": "auditor", "STORAGE_SERVICE_KEY": key}
    return subprocess.run([str(venv / "bin" / "fixity"), *args], env=env, capture_output=True,
                          text=True, timeout=600, check=False)


def _last_report(venv: Path, uuid: str) -> dict:
    """The report the client stored for an AIP (in the fixity.db beside its package)."""
    [database] = venv.glob("lib/python*/site-packages/fixity/fixity.db")
    with sqlite3.connect(database) as db:
        (text,) = db.execute("SELECT report FROM reports JOIN aips ON reports.aip_id = aips.id "
                             "WHERE aips.uuid = ? ORDER BY reports.id DESC LIMIT 1",
                             (uuid,)).fetchone()
    return json.loads(text)


def test_the_fixity_client_audits_dangan(fixity_venv, repo, server, cli):
    url, log = server
    key, _ = apikeys.create_key(Catalogue.open(repo.settings), "auditor", actor="test")

    clean = _fixity(fixity_venv, url, key, "scanall")
    assert clean.returncode == 0, clean.stderr
    assert f"Successfully scanned {len(repo.uuids)} AIPs" in clean.stderr
    assert clean.stderr.count("Fixity scan succeeded") == len(repo.uuids)

    uuid = repo.uuids[1]
    path = payload_file(repo.store("a"), uuid)
    flip_byte(repo.store("a"), uuid, path)

    damaged = _fixity(fixity_venv, url, key, "scan", uuid)
    assert damaged.returncode == 1, damaged.stderr
    assert f"Fixity scan failed for AIP: {uuid}" in damaged.stderr and path in damaged.stderr
    report = _last_report(fixity_venv, uuid)
    assert report["success"] is False
    assert [c["path"] for c in report["failures"]["files"]["changed"]] == [path]

    audit = cli("audit", "--json")
    assert audit.code == 0, audit.err
    out = json.loads(audit.out)
    [bad] = [c for c in out["checks"] if c["outcome"] == "fail"]
    assert (bad["aip"], bad["location"]) == (uuid, "a")
    assert [(f["kind"], f["path"]) for f in bad["findings"]] == [("changed", path)]
    [repair] = out["repairs"]
    assert repair["status"] == "done" and repair["replaced"] == {path: "b"}
    assert repair["recheck"]["outcome"] == "pass"

    again = _fixity(fixity_venv, url, key, "scanall", "--force-local")
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("Fixity scan succeeded") == len(repo.uuids)

    wrong = _fixity(fixity_venv, url, key + "x", "scanall")
    assert wrong.returncode == 1 and "failed authentication" in wrong.stderr

    served = log.read_text(errors="replace")
    assert "/api/v2/file/" in served and "api_key=[redacted]" in served
    assert key not in served
