"""Repair: from whichever copy verifies, file by file; after approval when the policy says so;
never overwriting anything when no intact copy exists."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixity_support import (
    audit_json,
    events_of,
    flip_byte,
    payload_file,
    write_policy,
)

pytest_plugins = ["fixity_fixtures"]

from storage.catalogue import Catalogue


def _copy_status(repo, uuid: str) -> dict[str, str]:
    return {c.location: c.status for c in Catalogue.open(repo.settings).copies_of(uuid)}


def test_no_intact_copy_is_flagged_loudly_and_nothing_is_overwritten(repo, cli):
    uuid = repo.uuids[2]
    a, b = repo.store("a"), repo.store("b")
    path = payload_file(a, uuid)
    flip_byte(a, uuid, path, 10)
    flip_byte(b, uuid, path, 20)
    before = (a.read(uuid, path), b.read(uuid, path))

    result = cli("audit", "--aip", uuid)

    assert result.code == 1
    assert "CRITICAL" in result.err and uuid in result.err and path in result.err
    assert (a.read(uuid, path), b.read(uuid, path)) == before
    assert _copy_status(repo, uuid) == {"a": "damaged", "b": "damaged"}
    report = cli("audit", "report", "--json")
    assert report.code == 1
    data = json.loads(report.out)
    assert {(r["aip"], r["location"]) for r in data["unrepairable"]} == {(uuid, "a"), (uuid, "b")}
    assert not data["coverage"]["all_copies_fully_checked_within_interval"]
    log = json.loads(cli("audit-log", "show", "-n", "40", "--json").out)
    assert [e["object"] for e in log if e["action"] == "aip-unrepairable"] == [uuid, uuid]
    assert {e.outcome for e in events_of(repo.settings, uuid, "replication")} == {"fail"}


def test_each_file_comes_from_the_copy_where_it_verifies(repo, cli):
    uuid = repo.uuids[3]
    a, b = repo.store("a"), repo.store("b")
    first, second = payload_file(a, uuid, 0), payload_file(a, uuid, 1)
    original = {first: a.read(uuid, first), second: a.read(uuid, second)}
    flip_byte(a, uuid, first)
    flip_byte(b, uuid, second)

    code, out = audit_json(cli, "--aip", uuid)

    assert code == 0
    repairs = {r["location"]: r for r in out["repairs"]}
    assert repairs["a"]["replaced"] == {first: "b"} and repairs["b"]["replaced"] == {second: "a"}
    for store in (a, b):
        assert store.read(uuid, first) == original[first]
        assert store.read(uuid, second) == original[second]
    assert _copy_status(repo, uuid) == {"a": "verified", "b": "verified"}


def test_repair_waits_for_approval_when_the_policy_says_so(repo, cli):
    write_policy(repo.home, "fixity", "algorithms: [sha256]\naudit:\n  repair: approve\n")
    uuid = repo.uuids[4]
    a, b = repo.store("a"), repo.store("b")
    path = payload_file(a, uuid)
    flip_byte(a, uuid, path)
    damaged = a.read(uuid, path)

    code, out = audit_json(cli, "--aip", uuid)

    assert code == 1
    [pending] = out["repairs"]
    assert pending["status"] == "pending" and a.read(uuid, path) == damaged
    listed = cli("repair", "list", "--json")
    assert [r["repair"] for r in json.loads(listed.out)] == [pending["repair"]]

    approved = cli("repair", "approve", pending["repair"][:8], "--by", "档案管理员")

    assert approved.code == 0, approved.out + approved.err
    assert a.read(uuid, path) == b.read(uuid, path)
    log = json.loads(cli("audit-log", "show", "-n", "10", "--json").out)
    approvals = [e for e in log if e["action"] == "repair-approved"]
    assert approvals and approvals[0]["actor"] == "档案管理员"
    assert cli("repair", "approve", pending["repair"]).code == 2     # no longer pending
    assert json.loads(cli("repair", "list", "--json").out) == []


def test_a_copy_that_vanished_entirely_is_written_again(repo, cli):
    uuid = repo.uuids[5]
    shutil.rmtree(repo.home / "store-b" / uuid)

    code, out = audit_json(cli, "--aip", uuid)

    check = next(c for c in out["checks"] if c["location"] == "b" and c["purpose"] == "audit")
    assert check["outcome"] == "fail" and {f["kind"] for f in check["findings"]} == {"missing"}
    [repair] = out["repairs"]
    assert repair["status"] == "done" and "whole copy" in repair["detail"]
    assert code == 0
    assert repo.store("b").paths(uuid) == repo.store("a").paths(uuid)


def test_rejected_repair_leaves_the_copy_damaged(repo, cli):
    write_policy(repo.home, "fixity", "algorithms: [sha256]\naudit:\n  repair: approve\n")
    uuid = repo.uuids[0]
    flip_byte(repo.store("b"), uuid, payload_file(repo.store("b"), uuid))
    _code, out = audit_json(cli, "--aip", uuid)
    [pending] = out["repairs"]

    assert cli("repair", "reject", pending["repair"], "--by", "审计员", "--reason", "取证").code == 0

    assert _copy_status(repo, uuid)["b"] == "damaged"
    assert json.loads(cli("repair", "list", "--json").out) == []
