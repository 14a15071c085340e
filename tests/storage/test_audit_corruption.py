"""Corruption injection: every kind of damage, on filesystem and S3 (moto) locations, is found
by a full audit, repaired from the other copy and re-verified; quick checks find what they
can without reading bytes, and say so."""

from __future__ import annotations

import sys
from pathlib import Path

import boto3
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixity_support import (
    DAMAGE,
    FAST_INGEST,
    FsStore,
    S3Store,
    audit_json,
    events_of,
    ingest_sample,
    s3_environment,
    write_policy,
)
from s3_servers import MotoServer

from policies import load_settings

pytest_plugins = ["fixity_fixtures"]


def _check(out: dict, location: str, purpose: str = "audit") -> dict:
    return next(c for c in out["checks"] if c["location"] == location and c["purpose"] == purpose)


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_filesystem_damage_is_found_repaired_and_reverified(repo, cli, damage):
    uuid = repo.uuids[0]
    damaged, good = repo.store("a"), repo.store("b")
    function, kind = DAMAGE[damage]
    path = function(damaged, uuid)

    code, out = audit_json(cli, "--aip", uuid)

    bad = _check(out, "a")
    assert bad["outcome"] == "fail" and bad["depth"] == "full"
    assert (kind, path) in {(f["kind"], f["path"]) for f in bad["findings"]}
    assert bad["files_read"] == bad["files"] - (kind == "missing") and bad["bytes_read"] > 0
    assert _check(out, "b")["outcome"] == "pass"
    [repair] = out["repairs"]
    assert repair["status"] == "done" and repair["recheck"]["outcome"] == "pass"
    assert code == 0 and out["exit_code"] == 0
    if kind == "untracked":
        assert path not in damaged.paths(uuid)
        kept = repo.home / "quarantine" / f"repair-{repair['repair']}" / uuid / path
        assert kept.read_bytes() == b"not part of the AIP\n"
    else:
        assert repair["replaced"] == {path: "b"}
        assert damaged.read(uuid, path) == good.read(uuid, path)
    assert damaged.paths(uuid) == good.paths(uuid)

    fixity = events_of(repo.settings, uuid)
    assert [e.outcome for e in fixity if e.location == "a"][-2:] == ["fail", "pass"]
    failed = next(e for e in fixity if e.outcome == "fail")
    assert "full check" in failed.detail and "sha256" in failed.detail
    assert "started" in failed.detail and "finished" in failed.detail
    assert path in failed.outcome_detail
    [replication] = events_of(repo.settings, uuid, "replication")
    assert replication.outcome == "pass" and replication.location == "a"

    again, out = audit_json(cli, "--aip", uuid)
    assert again == 0 and all(c["outcome"] == "pass" for c in out["checks"])


@pytest.mark.parametrize("damage,found", [("truncated", True), ("deleted-file", True),
                                          ("extra-file", True), ("edited-bag-info", True),
                                          ("changed-byte", False)])
def test_quick_check_reads_no_bytes_and_is_never_a_full_one(repo, cli, damage, found):
    uuid = repo.uuids[1]
    function, kind = DAMAGE[damage]
    path = function(repo.store("a"), uuid)

    code, out = audit_json(cli, "--aip", uuid, "--quick", "--no-repair")

    quick = _check(out, "a")
    assert quick["depth"] == "quick" and quick["files_read"] == 0 and quick["bytes_read"] == 0
    assert "presence and size only" in quick["note"]     # a filesystem keeps no checksum
    assert ((kind, path) in {(f["kind"], f["path"]) for f in quick["findings"]}) is found
    assert code == (1 if found else 0)
    # never a "pass": the outcome, its words and its PREMIS event say what was looked at
    assert quick["outcome"] == ("fail" if found else "present")
    assert not [e for e in events_of(repo.settings, uuid) if e.location == "a"], \
        "a quick check is not recorded as a fixity check"
    [event] = [e for e in events_of(repo.settings, uuid, "validation") if e.location == "a"]
    assert event.detail.startswith("quick check (not a fixity check)")
    assert event.outcome == ("fail" if found else "present")
    text = cli("audit", "--aip", uuid, "--quick", "--no-repair")
    if not found:
        assert "quick check: present and sized" in text.out and " passed" not in text.out
    # the full check that follows finds the same-size change the quick one could not see
    code, out = audit_json(cli, "--aip", uuid, "--no-repair")
    assert (kind, path) in {(f["kind"], f["path"]) for f in _check(out, "a")["findings"]}
    assert code == 1


@pytest.fixture(scope="module")
def moto():
    with MotoServer() as server:
        yield server


def test_s3_damage_of_every_kind_is_found_and_repaired(home, cli, moto, sample_master,
                                                       monkeypatch):
    s3_environment(monkeypatch, moto.access_key, moto.secret_key)
    client = boto3.client("s3", endpoint_url=moto.endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="fixity-audit")
    write_policy(home.home, "storage", f"""\
locations:
  - name: disk
    url: "file://{{home}}/store-disk"
  - name: s3
    url: "s3://fixity-audit/aips?endpoint_url={moto.endpoint}&addressing_style=path"
copies:
  default: [disk, s3]
""")
    uuids = ingest_sample(load_settings(home.home, environ=FAST_INGEST), sample_master)
    store, disk = S3Store(client, "fixity-audit", "aips"), FsStore(home.home / "store-disk")
    kinds = sorted(DAMAGE)
    damaged: dict[str, list[tuple[str, str]]] = {}
    for index, name in enumerate(kinds):
        uuid = uuids[index % len(uuids)]
        function, kind = DAMAGE[name]
        damaged.setdefault(uuid, []).append((kind, function(store, uuid)))

    quick_code, quick = audit_json(cli, "--all", "--quick", "--no-repair")
    assert quick_code == 1
    for check in quick["checks"]:
        assert check["bytes_read"] == 0
    sized = {(c["aip"], f["kind"], f["path"]) for c in quick["checks"] for f in c["findings"]}
    for uuid, found in damaged.items():
        for kind, path in found:
            if kind in ("missing", "untracked", "truncated"):
                assert (uuid, kind, path) in sized

    code, out = audit_json(cli, "--all")

    for uuid, found in damaged.items():
        check = next(c for c in out["checks"] if c["aip"] == uuid and c["location"] == "s3"
                     and c["purpose"] == "audit")
        assert check["outcome"] == "fail"
        seen = {(f["kind"], f["path"]) for f in check["findings"]}
        for expected in found:
            assert expected in seen, (expected, seen)
    assert all(c["outcome"] == "pass" for c in out["checks"] if c["location"] == "disk")
    assert {r["status"] for r in out["repairs"]} == {"done"}
    assert len(out["repairs"]) == len(damaged) and code == 0
    for uuid in damaged:
        assert store.paths(uuid) == disk.paths(uuid)
        for path in disk.paths(uuid):
            assert store.read(uuid, path) == disk.read(uuid, path)

    code, out = audit_json(cli, "--all")
    assert code == 0 and all(c["outcome"] == "pass" for c in out["checks"])
