"""Copies by policy, end to end through the command line: a local folder plus two S3
endpoints on moto_server; status, replicate, migrate, delete, failed copies."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select
from transfers import small_transfer

from policies import load_settings
from storage.catalogue import models
from storage.catalogue.database import Catalogue
from storage.locations.s3 import S3Location
from storage.copies import expected_of_aip
from storage.copies import RetentionLockRecord

PAYLOAD = "data/objects/户卷/001-申请书.txt"


def write_policy(home: Path, locations: dict[str, str], copies: dict[str, list[str]]) -> None:
    lines = ["locations:"]
    lines += [f"  - {{name: {name}, url: '{url}'}}" for name, url in locations.items()]
    lines += ["copies:"] + [f"  {cls}: [{', '.join(names)}]" for cls, names in copies.items()]
    (home / "policies").mkdir(exist_ok=True)
    (home / "policies" / "storage.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def repo(home, s3_env, new_bucket, monkeypatch):
    """A home whose policy asks for a local copy and two S3 copies (one 'off-site', reached
    through its own endpoint_url) of every 永久 record."""
    monkeypatch.setenv("DANGAN_STORAGE_FSYNC", "false")
    buckets = {"s3a": new_bucket(), "offsite": new_bucket(), "spare": new_bucket()}
    locations = {
        "local": "file://{home}/aips",
        "s3a": f"s3://{buckets['s3a']}/dangan",
        "offsite": f"s3://{buckets['offsite']}/aips?endpoint_url={s3_env.endpoint}"
                   "&addressing_style=path",
        "spare": f"s3://{buckets['spare']}/x",
    }
    write_policy(home.home, locations, {"default": ["local"], "Y": ["local", "s3a", "offsite"]})
    home.buckets = buckets   # type: ignore[attr-defined]
    return home


def transfer_of(tmp_path: Path, name: str, rows: int, volume: int = 1,
                period: str = "永久", date: str = "20160315") -> Path:
    """A one-volume transfer; each ``volume`` number gives different 档号."""
    transfer = small_transfer(tmp_path / name, rows=rows)
    sheet = transfer / "归档文件目录.csv"
    sheet.write_text(sheet.read_text(encoding="utf-8-sig").replace("永久", period)
                     .replace("20160315", date).replace("-0001-0", f"-{volume:04d}-0"),
                     encoding="utf-8-sig")
    return transfer


def ingest(cli, tmp_path: Path, name: str = "t", rows: int = 3, volume: int = 1) -> str:
    result = cli("ingest", transfer_of(tmp_path, name, rows, volume), "--json")
    assert result.code == 0, result.err
    (aip,) = json.loads(result.out)["aips"]
    return aip["uuid"]


def status(cli) -> tuple[int, dict[str, dict]]:
    result = cli("storage", "status", "--json")
    return result.code, {row["name"]: row for row in json.loads(result.out)["locations"]}


def copies(home, uuid: str) -> dict[str, str]:
    return {c.location: c.status for c in Catalogue.open(home).copies_of(uuid)}


def s3(home, name: str) -> S3Location:
    policy = {"s3a": f"s3://{home.buckets['s3a']}/dangan",
              "offsite": f"s3://{home.buckets['offsite']}/aips",
              "spare": f"s3://{home.buckets['spare']}/x"}
    return S3Location(name, policy[name])


def test_a_permanent_record_gets_every_copy_its_class_requires(repo, cli, tmp_path):
    uuid = ingest(cli, tmp_path)
    assert copies(repo, uuid) == {"local": "verified", "s3a": "verified", "offsite": "verified"}
    expected = expected_of_aip(Catalogue.open(repo), uuid)
    for name in ("s3a", "offsite"):
        assert s3(repo, name).verify_aip(uuid, expected) == []
    assert not s3(repo, "spare").has_aip(uuid)
    code, rows = status(cli)
    assert code == 0
    assert {n: (r["aips"], r["missing"], r["unverified"]) for n, r in rows.items()} == {
        "local": (1, 0, 0), "s3a": (1, 0, 0), "offsite": (1, 0, 0), "spare": (0, 0, 0)}
    assert rows["s3a"]["bytes"] == Catalogue.open(repo).get_aip(uuid).size
    assert rows["s3a"]["classes"] == ["Y"] and rows["local"]["classes"] == ["Y", "default"]
    assert rows["local"]["locked"] == 1, "永久 is held (by Dangan where the server cannot)"


def test_a_copy_deleted_behind_our_back_is_reported_served_around_and_restored(
        repo, cli, tmp_path, moto_client):
    uuid = ingest(cli, tmp_path)
    bucket = repo.buckets["s3a"]
    listed = moto_client.list_objects_v2(Bucket=bucket, Prefix=f"dangan/{uuid}/")["Contents"]
    moto_client.delete_objects(Bucket=bucket, Delete={
        "Objects": [{"Key": o["Key"]} for o in listed]})
    shutil.rmtree(repo.home / "aips" / uuid)

    code, rows = status(cli)
    assert code == 1
    assert rows["s3a"]["missing"] == 1 and rows["local"]["missing"] == 1
    assert rows["offsite"]["missing"] == 0
    assert any(uuid in p and "missing" in p for p in rows["s3a"]["problems"])
    assert any(uuid in p and "absent" in p for p in rows["local"]["problems"])

    out = tmp_path / "got.txt"
    got = cli("get", uuid, PAYLOAD, "-o", out)
    assert got.code == 0, got.err
    original = (tmp_path / "t" / "户卷" / "001-申请书.txt").read_bytes()
    assert out.read_bytes() == original and "from offsite" in got.err
    events = Catalogue.open(repo).aip_details(uuid)["events"]
    assert {e["location"] for e in events if e["outcome"] == "fail"} >= {"local", "s3a"}

    fixed = cli("replicate", "--json")
    assert fixed.code == 0, fixed.out + fixed.err
    actions = {(a["location"], a["action"]) for a in json.loads(fixed.out)["actions"]}
    assert actions == {("local", "copied"), ("s3a", "restored"), ("offsite", "ok")}
    assert status(cli)[0] == 0
    expected = expected_of_aip(Catalogue.open(repo), uuid)
    assert s3(repo, "s3a").verify_aip(uuid, expected) == []
    assert hashlib.sha256((repo.home / "aips" / uuid / PAYLOAD).read_bytes()).hexdigest() == \
        hashlib.sha256(original).hexdigest()
    kinds = [(e["type"], e["location"], e["outcome"]) for e in
             Catalogue.open(repo).aip_details(uuid)["events"]]
    assert ("replication", "s3a", "pass") in kinds and ("replication", "local", "pass") in kinds


def test_a_damaged_copy_is_skipped_by_retrieval_and_repaired_by_replicate(repo, cli, tmp_path,
                                                                          moto_client):
    uuid = ingest(cli, tmp_path)
    (repo.home / "aips" / uuid / PAYLOAD).write_bytes(b"ransomware was here")
    out = tmp_path / "got.txt"
    got = cli("get", uuid, PAYLOAD, "-o", out)
    assert got.code == 0 and out.read_bytes() == (tmp_path / "t" / "户卷" / "001-申请书.txt"
                                                  ).read_bytes()
    assert "from s3a" in got.err, "the first healthy copy in policy order"
    details = Catalogue.open(repo).aip_details(uuid)
    assert any(e["location"] == "local" and e["outcome"] == "fail" and "differs" in
               e["outcome_detail"] for e in details["events"])
    code, rows = status(cli)
    assert code == 1 and any("size" in p for p in rows["local"]["problems"])

    bucket = repo.buckets["offsite"]      # and one file of another copy is gone
    moto_client.delete_object(Bucket=bucket, Key=f"aips/{uuid}/{PAYLOAD}")
    fixed = json.loads(cli("replicate", "--json").out)
    actions = {(a["location"], a["action"]) for a in fixed["actions"]}
    assert actions == {("local", "restored"), ("s3a", "ok"), ("offsite", "restored")}
    expected = expected_of_aip(Catalogue.open(repo), uuid)
    assert s3(repo, "offsite").verify_aip(uuid, expected) == []
    assert (repo.home / "aips" / uuid / PAYLOAD).read_bytes() == \
        (tmp_path / "t" / "户卷" / "001-申请书.txt").read_bytes()
    assert status(cli)[0] == 0


def test_replicate_brings_a_new_location_up_to_policy(repo, cli, tmp_path):
    first, second = ingest(cli, tmp_path, "t1", 2), ingest(cli, tmp_path, "t2", 3, volume=2)
    write_policy(repo.home, {
        "local": "file://{home}/aips", "s3a": f"s3://{repo.buckets['s3a']}/dangan",
        "offsite": f"s3://{repo.buckets['offsite']}/aips",
        "spare": f"s3://{repo.buckets['spare']}/x"},
        {"default": ["local"], "Y": ["local", "s3a", "offsite", "spare"]})
    code, rows = status(cli)
    assert code == 1 and rows["spare"]["missing"] == 2
    planned = json.loads(cli("replicate", "--location", "spare", "--dry-run", "--json").out)
    assert planned["counts"] == {"planned": 2}
    assert not s3(repo, "spare").has_aip(first)
    done = cli("replicate", "--location", "spare", "--json")
    assert done.code == 0 and json.loads(done.out)["counts"] == {"copied": 2}
    for uuid in (first, second):
        assert copies(repo, uuid)["spare"] == "verified"
        assert s3(repo, "spare").verify_aip(uuid, expected_of_aip(Catalogue.open(repo), uuid)) == []
    assert status(cli)[0] == 0
    again = json.loads(cli("replicate", "--json").out)
    assert again["counts"] == {"ok": 8}, "nothing to do twice"


def test_migrate_moves_copies_with_verification_before_deleting(repo, cli, tmp_path):
    uuid = ingest(cli, tmp_path)
    write_policy(repo.home, {
        "local": "file://{home}/aips", "s3a": f"s3://{repo.buckets['s3a']}/dangan",
        "offsite": f"s3://{repo.buckets['offsite']}/aips",
        "spare": f"s3://{repo.buckets['spare']}/x"},
        {"default": ["spare"], "Y": ["spare", "s3a", "offsite"]})
    moved = cli("storage", "migrate", "local", "spare", "--json")
    assert moved.code == 0, moved.out + moved.err
    actions = [(a["location"], a["action"]) for a in json.loads(moved.out)["actions"]]
    assert actions == [("spare", "copied"), ("local", "deleted")]
    assert copies(repo, uuid) == {"spare": "verified", "s3a": "verified", "offsite": "verified"}
    assert not (repo.home / "aips" / uuid).exists()
    assert s3(repo, "spare").verify_aip(uuid, expected_of_aip(Catalogue.open(repo), uuid)) == []
    assert status(cli)[0] == 0
    out = tmp_path / "got.txt"
    assert cli("get", uuid, PAYLOAD, "-o", out).code == 0
    with Catalogue.open(repo).session() as s:
        locks = {r.location for r in s.scalars(select(RetentionLockRecord))}
        audit = [a.action for a in s.scalars(select(models.AuditEntry))]
    assert "local" not in locks and "spare" in locks
    assert "migrate" in audit


def test_migrate_keeps_copies_a_server_lock_protects(repo, cli, tmp_path, new_bucket):
    locked = new_bucket(lock=True)
    write_policy(repo.home, {"local": "file://{home}/aips", "vault": f"s3://{locked}/v",
                             "spare": f"s3://{repo.buckets['spare']}/x"},
                 {"default": ["local"], "Y": ["local", "vault"]})
    uuid = ingest(cli, tmp_path)
    moved = cli("storage", "migrate", "vault", "spare", "--json")
    assert moved.code == 0
    actions = [(a["location"], a["action"]) for a in json.loads(moved.out)["actions"]]
    assert actions == [("spare", "copied"), ("vault", "kept")]
    assert copies(repo, uuid) == {"local": "verified", "vault": "verified", "spare": "verified"}
    assert S3Location("vault", f"s3://{locked}/v").has_aip(uuid)


def test_a_copy_that_cannot_be_written_fails_the_ingest_and_is_reported(repo, cli, tmp_path,
                                                                        moto_client, monkeypatch):
    write_policy(repo.home, {"local": "file://{home}/aips",
                             "s3a": f"s3://{repo.buckets['s3a']}/dangan",
                             "later": "s3://not-created-yet/aips"},
                 {"default": ["local", "s3a", "later"]})
    monkeypatch.setenv("DANGAN_STORAGE_COPY_ATTEMPTS", "2")
    transfer = small_transfer(tmp_path / "t", rows=2)
    failed = cli("ingest", transfer)
    assert failed.code == 1
    assert "required copies failed" in failed.err and "later" in failed.err
    catalogue = Catalogue.open(repo)
    assert catalogue.list_aips(status=None) == [], "never UPLOADED without every copy"
    with catalogue.session() as s:
        reported = list(s.scalars(select(models.AuditEntry).where(
            models.AuditEntry.action == "copy-failed")))
    assert reported and reported[0].detail["location"] == "later"

    moto_client.create_bucket(Bucket="not-created-yet")
    done = cli("ingest", transfer, "--json")
    assert done.code == 0, done.err
    (aip,) = json.loads(done.out)["aips"]
    assert copies(repo, aip["uuid"]) == {"local": "verified", "s3a": "verified",
                                         "later": "verified"}
    expected = expected_of_aip(Catalogue.open(repo), aip["uuid"])
    assert S3Location("later", "s3://not-created-yet/aips").verify_aip(aip["uuid"], expected) == []


def test_delete_is_refused_while_retained_and_allowed_after_expiry(repo, cli, tmp_path):
    kept = ingest(cli, tmp_path, "kept")
    transfer = transfer_of(tmp_path, "old", 2, volume=9, period="定期10年", date="20080315")
    result = cli("ingest", transfer, "--json")
    assert result.code == 0, result.err
    expired = json.loads(result.out)["aips"][0]["uuid"]
    assert copies(repo, expired) == {"local": "verified"}, "D10 is the default class here"

    refused = cli("delete", kept, "--reason", "appraised")
    assert refused.code == 1 and "kept permanently" in refused.err
    assert copies(repo, kept) == {"local": "verified", "s3a": "verified", "offsite": "verified"}
    assert s3(repo, "s3a").has_aip(kept) and (repo.home / "aips" / kept).is_dir()

    assert cli("delete", expired).code == 2, "a reason is required"
    done = cli("delete", expired, "--reason", "鉴定：到期销毁 (2019 decision 7)", "--json")
    assert done.code == 0, done.err
    catalogue = Catalogue.open(repo)
    assert catalogue.get_aip(expired).status == "DELETED"
    with catalogue.session() as s:
        indexed = {d.aip_uuid for d in s.scalars(select(models.SearchDoc))}
    assert expired not in indexed and kept in indexed, "a deleted AIP leaves the search index"
    assert copies(repo, expired) == {}
    assert not (repo.home / "aips" / expired).exists()
    events = catalogue.aip_details(expired)["events"]
    assert any(e["type"] == "deletion" and "鉴定" in e["detail"] for e in events)


def test_policy_and_settings_errors_are_clear(repo, cli):
    write_policy(repo.home, {"local": "file://{home}/aips", "bad": "s3://b/p?colour=red"},
                 {"default": ["local", "bad"]})
    result = cli("replicate")
    assert result.code == 2 and "location bad" in result.err and "colour" in result.err
    write_policy(repo.home, {"local": "file://{home}/aips"}, {"default": ["local"]})
    settings = load_settings(repo.home)
    assert settings.get("storage", "worm_mode") == "COMPLIANCE"
    (repo.home / "dangan.toml").write_text('[storage]\nworm_mode = "LOOSE"\n')
    result = cli("replicate")
    assert result.code == 2 and "worm_mode" in result.err


def test_an_unreachable_endpoint_is_retried_then_reported(repo, cli, tmp_path, monkeypatch):
    write_policy(repo.home, {"local": "file://{home}/aips",
                             "down": "s3://b/p?endpoint_url=http://127.0.0.1:9&retries=1"
                                     "&connect_timeout=1"},
                 {"default": ["local", "down"]})
    monkeypatch.setenv("DANGAN_STORAGE_COPY_ATTEMPTS", "2")
    failed = cli("ingest", small_transfer(tmp_path / "t", rows=2))
    assert failed.code == 1 and "down: attempt 2 of 2" in failed.err, failed.err
    catalogue = Catalogue.open(repo)
    assert catalogue.list_aips(status=None) == []
    with catalogue.session() as s:
        attempts = [a.detail["attempt"] for a in s.scalars(select(models.AuditEntry).where(
            models.AuditEntry.action == "copy-failed"))]
        events = list(s.scalars(select(models.Event).where(models.Event.location == "down")))
    assert attempts == [1, 2] and len(events) == 2
    assert all(e.type == "replication" and e.outcome == "fail" for e in events)
