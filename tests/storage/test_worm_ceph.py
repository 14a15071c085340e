"""WORM against a real Object Lock implementation: a single-node Ceph RADOS Gateway.

Proves that the server itself refuses to delete a locked AIP object (retention and legal
hold), that versioning keeps the locked bytes whatever is written over them, that deletion
works once the retain-until date has passed (a retention of seconds), and that an ingest
locks every object from the record's 保管期限.
"""

from __future__ import annotations

import itertools
import os
import time
import uuid as uuidlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from s3_servers import s3_client
from sqlalchemy import select
from transfers import small_transfer

from policies import load_settings
from policies.errors import ObjectLocked
from storage.catalogue import Catalogue
from storage.locations import RetentionLock
from storage.locations.s3 import S3Location
from storage.copies import expected_of_aip
from storage.copies import RetentionLockRecord

_buckets = itertools.count(1)


@pytest.fixture
def ceph(radosgw, monkeypatch):
    """AWS environment for the gateway, and a plain client of it."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", radosgw.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", radosgw.secret_key)
    monkeypatch.setenv("AWS_ENDPOINT_URL", radosgw.endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return s3_client(radosgw.endpoint, radosgw.access_key, radosgw.secret_key)


def lock_bucket(client) -> str:
    name = f"worm-{os.getpid()}-{next(_buckets)}"
    client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


def versions(client, bucket: str, prefix: str) -> list[tuple[str, str]]:
    listed = client.list_object_versions(Bucket=bucket, Prefix=prefix)
    return sorted((v["Key"], v["VersionId"])
                  for v in listed.get("Versions", []) + listed.get("DeleteMarkers", []))


def refused(client, bucket: str, key: str, version: str) -> str:
    """Try to delete one object version directly; return the server's error code."""
    with pytest.raises(ClientError) as caught:
        client.delete_object(Bucket=bucket, Key=key, VersionId=version)
    return caught.value.response["Error"]["Code"]


def test_server_refuses_to_delete_until_the_retain_until_date(ceph, bag):
    folder, expected = bag
    bucket = lock_bucket(ceph)
    assert ceph.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    location = S3Location("ceph", f"s3://{bucket}/aips")
    uuid = str(uuidlib.uuid4())
    location.put_aip(uuid, folder, expected)
    until = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=8)
    assert location.set_retention(uuid, RetentionLock("COMPLIANCE", until)) == "server"
    lock = location.get_retention(uuid)
    assert lock.mode == "COMPLIANCE" and lock.retain_until == until and lock.in_force()

    stored = versions(ceph, bucket, f"aips/{uuid}/")
    assert len(stored) == len(expected)
    for key, version in stored:
        head = ceph.head_object(Bucket=bucket, Key=key, VersionId=version)
        assert head["ObjectLockMode"] == "COMPLIANCE" and head["ObjectLockRetainUntilDate"] == until
    key, version = stored[0]
    assert refused(ceph, bucket, key, version) == "AccessDenied", "the server itself refuses"
    with pytest.raises(ObjectLocked, match="COMPLIANCE until"):
        location.delete_aip(uuid)
    assert location.verify_aip(uuid, expected) == [], "a refused deletion removed nothing"

    # versioning: an overwrite or a plain delete only stacks new versions on the locked one
    path = "data/objects/户卷/001-申请书.txt"
    ceph.put_object(Bucket=bucket, Key=f"aips/{uuid}/{path}", Body=b"overwritten")
    ceph.delete_object(Bucket=bucket, Key=f"aips/{uuid}/bagit.txt")
    original = dict(stored)[f"aips/{uuid}/{path}"]
    body = ceph.get_object(Bucket=bucket, Key=f"aips/{uuid}/{path}", VersionId=original)["Body"]
    assert body.read() == (folder / path).read_bytes()

    time.sleep(max(0.0, (until - datetime.now(timezone.utc)).total_seconds()) + 1.5)
    assert not location.get_retention(uuid).in_force()
    location.delete_aip(uuid)
    assert versions(ceph, bucket, "aips/") == [], "every version and marker is gone"
    assert not location.has_aip(uuid)


def test_legal_hold_refuses_deletion_until_released(ceph, bag):
    folder, expected = bag
    bucket = lock_bucket(ceph)
    location = S3Location("ceph", f"s3://{bucket}/aips")
    uuid = str(uuidlib.uuid4())
    location.put_aip(uuid, folder, expected)
    location.set_retention(uuid, RetentionLock("COMPLIANCE", None, legal_hold=True))
    assert location.get_retention(uuid) == RetentionLock("COMPLIANCE", None, True)
    key, version = versions(ceph, bucket, f"aips/{uuid}/")[0]
    assert ceph.head_object(Bucket=bucket, Key=key, VersionId=version)[
        "ObjectLockLegalHoldStatus"] == "ON"
    assert refused(ceph, bucket, key, version) == "AccessDenied"
    with pytest.raises(ObjectLocked, match="legal hold"):
        location.delete_aip(uuid)
    assert location.verify_aip(uuid, expected) == []
    location.set_retention(uuid, RetentionLock("COMPLIANCE", None, legal_hold=False))
    location.delete_aip(uuid)
    assert versions(ceph, bucket, "aips/") == []


def _home_with_ceph(tmp_path: Path, bucket: str, endpoint: str, mode: str):
    home = tmp_path / "ceph-home"
    (home / "policies").mkdir(parents=True)
    (home / "policies" / "storage.yaml").write_text(
        "locations:\n"
        "  - {name: local, url: 'file://{home}/aips'}\n"
        f"  - {{name: ceph, url: 's3://{bucket}/dangan?endpoint_url={endpoint}'}}\n"
        "copies:\n  default: [local, ceph]\n", encoding="utf-8")
    (home / "dangan.toml").write_text(f'[storage]\nworm_mode = "{mode}"\nfsync = false\n')
    return load_settings(home)


def test_ingest_locks_every_object_from_the_retention_period(ceph, radosgw, tmp_path, cli,
                                                             monkeypatch):
    bucket = lock_bucket(ceph)
    settings = _home_with_ceph(tmp_path, bucket, radosgw.endpoint, "COMPLIANCE")
    monkeypatch.setenv("DANGAN_HOME", str(settings.home))
    result = cli("ingest", small_transfer(tmp_path / "t", rows=2), "--json")
    assert result.code == 0, result.err
    catalogue = Catalogue.open(settings)
    (aip,) = catalogue.list_aips()
    assert aip.retention_period == "Y" and aip.expiry_date is None
    keys = versions(ceph, bucket, f"dangan/{aip.uuid}/")
    assert len(keys) == len(expected_of_aip(catalogue, aip.uuid))
    for key, version in keys + versions(ceph, bucket, f"dangan/.dangan/published/{aip.uuid}"):
        head = ceph.head_object(Bucket=bucket, Key=key, VersionId=version)
        assert head.get("ObjectLockLegalHoldStatus") == "ON", key   # 永久: legal hold
    with catalogue.session() as s:
        rows = {r.location: r for r in s.scalars(select(RetentionLockRecord))}
    assert rows["ceph"].enforced_by == "server" and rows["ceph"].legal_hold
    assert rows["local"].enforced_by == "catalogue"

    refusal = cli("delete", aip.uuid, "--reason", "test")
    assert refusal.code == 1 and "kept permanently" in refusal.err
    assert refused(ceph, bucket, *keys[0]) == "AccessDenied"
    assert catalogue.get_aip(aip.uuid).status == "UPLOADED"
    assert (settings.home / "aips" / aip.uuid / "bagit.txt").exists()


def test_a_fixed_period_becomes_a_retain_until_date_in_the_configured_mode(ceph, radosgw,
                                                                          tmp_path, cli,
                                                                          monkeypatch):
    bucket = lock_bucket(ceph)
    settings = _home_with_ceph(tmp_path, bucket, radosgw.endpoint, "GOVERNANCE")
    monkeypatch.setenv("DANGAN_HOME", str(settings.home))
    transfer = small_transfer(tmp_path / "t", rows=2)
    sheet = transfer / "归档文件目录.csv"
    sheet.write_text(sheet.read_text(encoding="utf-8-sig").replace("永久", "定期10年")
                     .replace("20160315", "20200315"), encoding="utf-8-sig")
    result = cli("ingest", transfer, "--json")
    assert result.code == 0, result.err
    (aip,) = Catalogue.open(settings).list_aips()
    assert (aip.retention_period, aip.expiry_date.isoformat()) == ("D10", "2030-12-31")
    expected_until = datetime(2030, 12, 31, 16, 0, tzinfo=timezone.utc)  # 2031-01-01 00:00 CST
    for key, version in versions(ceph, bucket, f"dangan/{aip.uuid}/"):
        head = ceph.head_object(Bucket=bucket, Key=key, VersionId=version)
        assert head["ObjectLockMode"] == "GOVERNANCE"
        assert head["ObjectLockRetainUntilDate"] == expected_until
        assert head.get("ObjectLockLegalHoldStatus") != "ON"
    refusal = cli("delete", aip.uuid, "--reason", "test")
    assert refusal.code == 1 and "2030-12-31" in refusal.err
