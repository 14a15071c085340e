"""Reading ahead: ``dangan audit --aip`` hashes the AIP's large files while the rest of the
audit loads, and the audit takes those digests only for the very file that was read.

The read-ahead takes the AIP's largest file when the others hold little; ``MIN_BYTES`` is
lowered to one byte here so that a small sample AIP shows what a large one does.
"""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixity_support import audit_json, flip_byte, payload_file

from storage.fixity import readahead, scan

pytest_plugins = ["fixity_fixtures"]


@pytest.fixture
def sqlite_repo(repo):
    if not repo.settings.get("catalogue", "url").startswith("sqlite:///"):
        pytest.skip("reading ahead reads a SQLite catalogue only (PostgreSQL: the audit "
                    "reads every file itself)")
    return repo


@pytest.fixture
def every_file(monkeypatch):
    """Read every file ahead, and keep the read-ahead that the command starts."""
    monkeypatch.setattr(readahead, "MIN_BYTES", 1)
    started: list[readahead.ReadAhead] = []
    real_start = readahead.start

    def start(*args, **kwargs):
        started.append(real_start(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(readahead, "start", start)
    return started


@pytest.fixture
def scanner_reads(monkeypatch):
    """The stored files the scanner hashed itself (not taken from the read-ahead)."""
    names: list[str] = []
    real_stream, real_descriptor = scan.hash_stream, scan.hash_descriptor

    def stream_spy(stream, *args, **kwargs):
        names.append(str(getattr(stream, "name", stream)))
        return real_stream(stream, *args, **kwargs)

    def descriptor_spy(fd, *args, **kwargs):
        names.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real_descriptor(fd, *args, **kwargs)

    monkeypatch.setattr(scan, "hash_stream", stream_spy)
    monkeypatch.setattr(scan, "hash_descriptor", descriptor_spy)
    return names


def _payload(names: list[str]) -> list[str]:
    return [n for n in names if "/data/" in n]


def _largest(repo, uuid: str) -> str:
    """The file the read-ahead takes: the AIP's largest (by path among equals)."""
    store = repo.store("a")
    return min(store.paths(uuid), key=lambda p: (-store.file(uuid, p).stat().st_size, p))


def test_bytes_spread_over_several_files_are_left_to_the_workers(sqlite_repo, monkeypatch):
    monkeypatch.setattr(readahead, "MIN_BYTES", 1)
    monkeypatch.setattr(readahead, "REST_MAX_BYTES", 1)
    ahead = readahead.ReadAhead(sqlite_repo.settings, sqlite_repo.uuids[0]).start()
    assert ahead.planned.wait(30)
    assert "several files" in ahead.skipped_reason and not ahead.entries


def test_files_read_ahead_are_taken_not_read_twice(sqlite_repo, cli, every_file, scanner_reads):
    uuid = sqlite_repo.uuids[0]
    code, out = audit_json(cli, "--aip", uuid, "--location", "a", "--no-repair")
    assert code == 0 and out["summary"]["passed"] == 1, out
    [ahead] = every_file
    [entry] = ahead.entries.values()
    assert ahead.skipped_reason is None and entry.path == _largest(sqlite_repo, uuid)
    assert entry.done.is_set() and entry.error is None
    read_here = _payload(scanner_reads)
    assert read_here and not [n for n in read_here if n.endswith("/" + entry.path)]
    [check] = out["checks"]
    assert check["files_read"] == check["files"] and check["bytes_read"] > 0


def test_damage_in_a_file_read_ahead_is_found(sqlite_repo, cli, every_file):
    uuid = sqlite_repo.uuids[0]
    store = sqlite_repo.store("a")
    damaged = _largest(sqlite_repo, uuid)
    flip_byte(store, uuid, damaged)
    code, out = audit_json(cli, "--aip", uuid, "--location", "a", "--no-repair")
    assert code == 1
    [check] = out["checks"]
    assert check["outcome"] == "fail"
    assert [(f["path"], f["kind"]) for f in check["findings"]] == [(damaged, "changed")]


def test_a_file_changed_after_it_was_read_ahead_is_read_again(sqlite_repo, monkeypatch,
                                                              scanner_reads):
    """The read-ahead read the intact file; then one byte changed in place (same inode, same
    size): the audit must read the file itself and find the change."""
    from storage.fixity import Auditor, AuditRequest

    monkeypatch.setattr(readahead, "MIN_BYTES", 1)
    settings, uuid = sqlite_repo.settings, sqlite_repo.uuids[0]
    ahead = readahead.start(settings, uuid, "a")
    try:
        ahead.planned.wait(30)
        entries = list(ahead.entries.values())
        assert [e.path for e in entries] == [_largest(sqlite_repo, uuid)]
        for entry in entries:
            assert entry.done.wait(30) and entry.error is None
        target = sqlite_repo.store("a").file(uuid, entries[0].path)
        inode = os.stat(target).st_ino
        with open(target, "r+b") as handle:
            first = handle.read(1)
            handle.seek(0)
            handle.write(bytes([first[0] ^ 0x01]))
        assert os.stat(target).st_ino == inode
        with Auditor(settings) as auditor:
            result = auditor.run(AuditRequest("full", uuid, "a", repair=False))
    finally:
        readahead.finish()
    [check] = result.checks
    assert check.outcome == "fail"
    assert [(f.path, f.kind) for f in check.findings] == [(entries[0].path, "changed")]
    assert str(target) in _payload(scanner_reads)       # read again, not taken


def test_no_reading_ahead_while_another_audit_holds_the_lock(sqlite_repo):
    settings = sqlite_repo.settings
    lock = settings.home / "locks" / "audit.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        ahead = readahead.ReadAhead(settings, sqlite_repo.uuids[0]).start()
        assert ahead.planned.wait(30)
    assert ahead.skipped_reason == "another audit is running" and not ahead.entries


def test_reading_ahead_can_be_switched_off(sqlite_repo, cli, every_file, scanner_reads,
                                           monkeypatch):
    monkeypatch.setattr(readahead, "MIN_BYTES", 1)
    monkeypatch.setenv("DANGAN_AUDIT_READ_AHEAD", "false")
    uuid = sqlite_repo.uuids[0]
    code, out = audit_json(cli, "--aip", uuid, "--location", "a", "--no-repair")
    assert code == 0, out
    [ahead] = every_file
    assert ahead.skipped_reason.startswith("switched off") and not ahead.entries
    assert _payload(scanner_reads)               # the scanner read the payload itself


def test_a_manifest_algorithm_the_catalogue_lacks_is_read_too(repo, cli):
    """Payload files are first read with the catalogue's algorithms, before the copy's
    manifests are parsed; a manifest of another algorithm has its files read again with it."""
    import hashlib

    uuid = repo.uuids[0]
    store = repo.store("a")
    payload = [p for p in store.paths(uuid) if p.startswith("data/")]
    lines = [f"{hashlib.md5(store.read(uuid, p)).hexdigest()}  {p}\n" for p in payload]
    lines[0] = "0" * 32 + lines[0][32:]               # one entry that does not match
    store.write(uuid, "manifest-md5.txt", "".join(lines).encode())
    code, out = audit_json(cli, "--aip", uuid, "--location", "a", "--no-repair")
    assert code == 1
    [check] = out["checks"]
    assert sorted((f["kind"], f["path"]) for f in check["findings"]) == [
        ("manifest", payload[0]), ("untracked", "manifest-md5.txt")]
    assert "md5" in check["algorithms"]
    # each file counted once; the manifest unknown to the catalogue is read to be parsed
    assert check["files_read"] == check["files"] + 1


def test_a_worker_lists_the_copy_while_the_others_read(repo, monkeypatch, tmp_path):
    """With worker processes, the listing and the manifests come from a worker (forked, not
    from a forkserver, when no other thread runs), and the check is the same."""
    from storage.fixity import Auditor, AuditRequest
    from storage.fixity import audit

    monkeypatch.setattr(scan, "INLINE_MAX_FILES", 2)      # the sample's AIPs go to workers
    methods = []
    real_pool = scan.Scanner._ensure_pool

    def ensure_pool(self):
        if self._pool is not None:
            return real_pool(self)
        foreign = bool(scan._foreign_threads())        # e.g. a server thread of another test
        pool = real_pool(self)
        methods.append((pool._mp_context.get_start_method(), foreign))
        return pool

    real_survey = audit.survey_in_worker
    where = tmp_path / "surveyed-in"

    def survey_in_worker(*args):
        where.write_text(str(os.getpid()))
        return real_survey(*args)

    # sent to the worker by name, as the module's own function is
    survey_in_worker.__module__, survey_in_worker.__qualname__ = audit.__name__, "survey_in_worker"
    monkeypatch.setattr(scan.Scanner, "_ensure_pool", ensure_pool)
    monkeypatch.setattr(audit, "survey_in_worker", survey_in_worker)
    store = repo.store("a")
    uuid = repo.uuids[0]
    damaged = payload_file(store, uuid)
    flip_byte(store, uuid, damaged)
    with Auditor(repo.settings) as auditor:
        result = auditor.run(AuditRequest("full", uuid, "a", repair=False))
    [check] = result.checks
    assert [(f.path, f.kind) for f in check.findings] == [(damaged, "changed")]
    assert check.files_read == check.files
    [(method, foreign)] = methods
    if not foreign:        # a forked worker runs the spy; a forkserver's imports its own
        assert method == "fork"
        assert int(where.read_text()) != os.getpid()
