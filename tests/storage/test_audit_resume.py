"""An audit killed part-way resumes where it stopped: finished copies are not checked again and
files already checkpointed are not read again."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixity_support import audit_json, events_of, flip_byte, write_policy

from storage.catalogue import Catalogue
from storage.fixity.models import AuditProgress, AuditRun, AuditRunItem

pytest_plugins = ["fixity_fixtures"]


def _dangan(home: Path, *args: str, crash_at: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DANGAN_")}
    env["DANGAN_HOME"] = str(home)
    if crash_at:
        env["DANGAN_CRASH_AT"] = crash_at
    return subprocess.run([sys.executable, "-m", "dangan", *args], env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def test_a_killed_audit_resumes_without_reading_again(repo, cli):
    write_policy(repo.home, "fixity",
                 "algorithms: [sha256]\naudit:\n  checkpoint_files: 4\n  checkpoint_seconds: 0\n")

    # killed in the second copy: after the first copy's checkpoints (one per 4 payload files;
    # tag files are read with the listing, not checkpointed) and one of the second's
    [first, *_rest] = json.loads(cli("audit", "--all", "--dry-run", "--json").out)["copies"]
    from storage.fixity.records import expected_files

    payload = [p for p in expected_files(Catalogue.open(repo.settings), first["aip"])
               if "/" in p]
    crash_at = -(-len(payload) // 4) + 1
    killed = _dangan(repo.home, "audit", "--all", "--json",
                     crash_at=f"audit-checkpoint:{crash_at}")

    assert killed.returncode == -9, killed.stderr
    catalogue = Catalogue.open(repo.settings)
    with catalogue.session() as s:
        [run] = s.scalars(select(AuditRun)).all()
        assert run.status == "running"
        done_before = s.scalars(select(AuditRunItem).where(AuditRunItem.state == "done")).all()
        progress = s.scalars(select(AuditProgress).where(AuditProgress.run_id == run.id)).all()
    assert done_before, "the first copies finished before the kill"
    pending_copy = {(p.aip_uuid, p.location) for p in progress} - {
        (i.aip_uuid, i.location) for i in done_before}
    [(uuid, location)] = pending_copy
    checkpointed = [r[0] for p in progress if (p.aip_uuid, p.location) == (uuid, location)
                    for r in p.results]
    assert checkpointed
    # damage a file whose result is already checkpointed: a resumed audit that read it
    # again would find it; one that trusts its checkpoint does not
    store = repo.store(location)
    flip_byte(store, uuid, checkpointed[0])

    code, out = audit_json(cli, "--all")

    assert out["run"] == run.id and out["resumed"] is True and code == 0
    assert len(out["checks"]) == 12
    resumed = next(c for c in out["checks"] if (c["aip"], c["location"]) == (uuid, location))
    assert resumed["files_resumed"] == len(checkpointed)
    assert resumed["files_read"] + resumed["files_resumed"] == resumed["files"]
    assert out["summary"]["files_resumed"] == len(checkpointed)
    finished_ids = {i.check_id for i in done_before}
    assert finished_ids <= {c["check"] for c in out["checks"]}
    for uuid_done in {i.aip_uuid for i in done_before}:
        copies_done = [i.location for i in done_before if i.aip_uuid == uuid_done]
        checks = [e for e in events_of(repo.settings, uuid_done) if e.location in copies_done]
        assert len(checks) == len(copies_done)          # not checked a second time
    with catalogue.session() as s:
        assert s.get(AuditRun, run.id).status == "finished"
        assert not s.scalars(select(AuditProgress)).all()

    # a fresh audit reads everything again and finds the damage
    code, fresh = audit_json(cli, "--aip", uuid, "--no-repair")
    assert fresh["resumed"] is False and code == 1
    bad = next(c for c in fresh["checks"] if c["location"] == location)
    assert [(f["kind"], f["path"]) for f in bad["findings"]] == [("changed", checkpointed[0])]


def test_progress_is_shown_on_stderr(repo, cli):
    result = cli("audit", "--all")
    assert result.code == 0
    assert "12 个副本待校验" in result.err
    assert result.err.count("PASS  full") == 12
    assert "12 copies, 12 passed" in result.out
    listing = json.loads(cli("audit", "--dry-run", "--json").out)
    assert listing["copies"] == []                      # all were just fully checked


def test_only_one_audit_runs_at_a_time(repo, cli):
    lock = repo.home / "locks" / "audit.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        result = cli("audit", "--all")
    assert result.code == 2 and "another audit is running" in result.err
    assert cli("audit", "--all").code == 0


def test_checkpoints_are_at_most_one_per_interval(repo, monkeypatch):
    """checkpoint_seconds spaces the checkpoints: with a long interval a copy's results are
    written once, at the end of its reading; with 0, every batch of checkpoint_files."""
    from storage.fixity import Auditor, AuditRequest
    from storage.fixity import audit as audit_module

    written: list[int] = []
    real = audit_module.Auditor._checkpoint

    def count(self, run_id, uuid, location, batch):
        written.append(len(batch))
        return real(self, run_id, uuid, location, batch)

    monkeypatch.setattr(audit_module.Auditor, "_checkpoint", count)
    uuid = repo.uuids[0]
    for seconds in (3600, 0):
        write_policy(repo.home, "fixity", "algorithms: [sha256]\naudit:\n  checkpoint_files: 2\n"
                     f"  checkpoint_seconds: {seconds}\n")
        written.clear()
        with Auditor(repo.settings) as auditor:
            result = auditor.run(AuditRequest("full", uuid, "a", repair=False))
        [check] = result.checks
        assert check.outcome == "pass" and sum(written) > 2
        if seconds:
            assert len(written) == 1, written          # once, at the end
        else:
            assert len(written) >= sum(written) // 2 and max(written) <= 2, written
