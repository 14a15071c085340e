"""Destruction against a real Object Lock server (single-node Ceph RADOS Gateway): an AIP whose
objects are still locked is left untouched and ``deferred`` with the date destruction becomes
possible; once the retain-until date (8 s here) has passed, executing again destroys it."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from test_worm_ceph import _home_with_ceph, ceph, lock_bucket, versions  # noqa: F401
from transfers import small_transfer

from storage.appraisal import Tombstone
from storage.catalogue import Catalogue
from storage.locations import RetentionLock
from storage.locations.s3 import S3Location

PASSWORD = "appraisal-worm-pw-2026"


def _expired_record_locked_for_8s(ceph, radosgw, tmp_path, cli, monkeypatch):
    """A home on a Ceph Object Lock bucket with staff li, wang, zhao, and one ingested AIP of
    定期10年 from 2008 (expired), whose copy the server locks for 8 s more: a lock its period no
    longer asks for (say, set by an earlier policy). Returns (settings, bucket, uuid, until)."""
    bucket = lock_bucket(ceph)
    settings = _home_with_ceph(tmp_path, bucket, radosgw.endpoint, "COMPLIANCE")
    monkeypatch.setenv("DANGAN_HOME", str(settings.home))
    monkeypatch.setenv("DANGAN_PASSWORD", PASSWORD)
    monkeypatch.setenv("DANGAN_WITNESS_PASSWORD", PASSWORD)
    for user, role in (("li", "archivist"), ("wang", "admin"), ("zhao", "auditor")):
        assert cli("user", "add", user, "--role", role, "--password-env",
                   "DANGAN_PASSWORD").code == 0
    transfer = small_transfer(tmp_path / "t", rows=2)
    sheet = transfer / "归档文件目录.csv"
    sheet.write_text(sheet.read_text(encoding="utf-8-sig").replace("永久", "定期10年")
                     .replace("20160315", "20080315"), encoding="utf-8-sig")
    done = cli("ingest", transfer, "--json")
    assert done.code == 0, done.err
    uuid = json.loads(done.out)["aips"][0]["uuid"]
    until = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=8)
    assert S3Location("ceph", f"s3://{bucket}/dangan").set_retention(
        uuid, RetentionLock("COMPLIANCE", until)) == "server"
    return settings, bucket, uuid, until


def test_a_locked_aip_is_deferred_untouched_then_destroyed_after_its_lock(
        ceph, radosgw, tmp_path, cli, monkeypatch):   # noqa: F811 - the fixture imported
    settings, bucket, uuid, until = _expired_record_locked_for_8s(
        ceph, radosgw, tmp_path, cli, monkeypatch)
    before = versions(ceph, bucket, f"dangan/{uuid}/")

    made = cli("appraisal", "propose", "--title", "到期鉴定", "--aip", uuid, "--as", "li",
               "--json")
    batch = json.loads(made.out)["id"]
    cli("appraisal", "decide", batch, "--aip", uuid, "--decision", "destroy", "--reason", "到期",
        "--as", "li")
    cli("appraisal", "submit", batch, "--as", "li")
    assert cli("appraisal", "approve", batch, "--as", "wang").code == 0
    first = cli("appraisal", "execute", batch, "--witness", "zhao", "--json")
    assert first.code == 1, first.err
    (deferred,) = json.loads(first.out)["deferred"]
    assert "ceph" in deferred["detail"]
    assert deferred["possible_from"] == until.isoformat()
    assert versions(ceph, bucket, f"dangan/{uuid}/") == before, "nothing locked is touched"
    catalogue = Catalogue.open(settings)
    with catalogue.session() as s:
        tomb = s.get(Tombstone, uuid)
        assert not tomb.complete and tomb.copies == {"local": "deleted", "ceph": "present"}

    time.sleep(max(0.0, (until - datetime.now(timezone.utc)).total_seconds()) + 1)
    second = cli("appraisal", "execute", batch, "--witness", "zhao", "--json")
    assert second.code == 0, second.out + second.err
    assert versions(ceph, bucket, f"dangan/{uuid}/") == []
    assert catalogue.get_aip(uuid).status == "DESTROYED"
    with catalogue.session() as s:
        assert s.get(Tombstone, uuid).complete
        assert s.scalars(select(Tombstone)).all()


def test_an_extension_relocks_every_object_on_the_server_for_the_new_period(
        ceph, radosgw, tmp_path, cli, monkeypatch):   # noqa: F811 - the fixture imported
    """延长保管期限 on an Object Lock bucket: the lock of 8 s an expired record still had is
    replaced, on every object of every version, by a retain-until at the end of the new
    period, and the server itself refuses to delete any of them."""
    from test_worm_ceph import refused

    settings, bucket, uuid, until = _expired_record_locked_for_8s(
        ceph, radosgw, tmp_path, cli, monkeypatch)

    made = cli("appraisal", "propose", "--title", "到期鉴定", "--aip", uuid, "--as", "li",
               "--json")
    batch = json.loads(made.out)["id"]
    cli("appraisal", "decide", batch, "--aip", uuid, "--decision", "extend:D30",
        "--reason", "有查考价值", "--as", "li")
    cli("appraisal", "submit", batch, "--as", "li")
    assert cli("appraisal", "approve", batch, "--as", "wang").code == 0
    run = cli("appraisal", "execute", batch, "--witness", "zhao", "--json")
    assert run.code == 0, run.out + run.err
    assert "ceph: server" in json.loads(run.out)["done"][0]["detail"]

    listed = ceph.list_object_versions(Bucket=bucket, Prefix=f"dangan/{uuid}/")
    current = [v for v in listed["Versions"] if v["IsLatest"]]
    assert any("/versions/v2-" in v["Key"] for v in current), "the new version is stored"
    for v in current:
        head = ceph.head_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
        assert head["ObjectLockMode"] == "COMPLIANCE", v["Key"]
        assert head["ObjectLockRetainUntilDate"].year == 2038, (v["Key"], head)
    time.sleep(max(0.0, (until - datetime.now(timezone.utc)).total_seconds()) + 1)
    first = current[0]
    assert refused(ceph, bucket, first["Key"], first["VersionId"]) == "AccessDenied", \
        "the old 8 s lock has passed: the new period keeps the object"
    catalogue = Catalogue.open(settings)
    assert catalogue.get_aip(uuid).retention_period == "D30"
