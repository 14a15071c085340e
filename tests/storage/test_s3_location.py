"""S3 location specifics against moto_server: configuration, checksums, multipart with bounded
memory, read-back verification with retries, error mapping, leftovers of interrupted uploads."""

from __future__ import annotations

import base64
import json
import os
import tracemalloc
import uuid as uuidlib
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError
from bag_support import make_bag

from policies.errors import ConfigError, FixityError, ObjectLocked, ObjectNotFound, StorageError
from policies.loader import LocationSpec
from storage.locations import open_location
from storage.locations import RetentionLock
from storage.locations.s3 import S3Location, S3Options, map_exceptions, parse_s3_url

FAST = "backoff=0.01"


def new_uuid() -> str:
    return str(uuidlib.uuid4())


def keys_under(client, bucket: str, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


# --------------------------------------------------------------------------- configuration


def test_url_and_options_parse():
    assert parse_s3_url("s3://b/a/b/?workers=3") == ("b", "a/b/", {"workers": "3"})
    assert parse_s3_url("s3://b") == ("b", "", {})
    options = S3Options.parse({"workers": "3", "part_mib": "5", "addressing_style": "path"})
    assert (options.workers, options.part_size, options.addressing_style) == (3, 5 << 20, "path")
    for bad in ({"colour": "red"}, {"workers": "many"}, {"checksum": "md5"},
                {"part_mib": "1"}, {"addressing_style": "sideways"}):
        with pytest.raises(ConfigError):
            S3Options.parse(bad)
    with pytest.raises(ConfigError):
        parse_s3_url("http://b/p")


def test_open_location_takes_defaults_from_settings(home, s3_env, new_bucket):
    spec = LocationSpec("s3a", f"s3://{new_bucket()}/p?workers=2")
    location = open_location(spec, settings=home)
    assert isinstance(location, S3Location)
    assert location.options.workers == 2            # the URL wins
    assert location.options.part_mib == home.int("storage", "s3_part_mib")


def test_endpoint_comes_from_aws_endpoint_url(s3_env, new_bucket, bag):
    folder, expected = bag
    location = S3Location("s3a", f"s3://{new_bucket()}/p")
    assert location.client.meta.endpoint_url == s3_env.endpoint
    location.put_aip(new_uuid(), folder, expected)


def test_a_profile_names_endpoint_credentials_and_path_style(tmp_path, moto, new_bucket,
                                                             monkeypatch, bag):
    folder, expected = bag
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    # "localhost" would be addressed virtual-host style (bucket.localhost) without the setting
    endpoint = moto.endpoint.replace("127.0.0.1", "localhost")
    config = tmp_path / "aws-config"
    config.write_text(f"[profile offsite]\nendpoint_url = {endpoint}\nregion = cn-north-1\n"
                      f"aws_access_key_id = {moto.access_key}\n"
                      f"aws_secret_access_key = {moto.secret_key}\n"
                      "s3 =\n    addressing_style = path\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    bucket = new_bucket()
    location = S3Location("offsite", f"s3://{bucket}/aips?profile=offsite")
    urls = []
    location.client.meta.events.register("before-send.s3.PutObject",
                                         lambda request, **_: urls.append(request.url))
    uuid = new_uuid()
    location.put_aip(uuid, folder, expected)
    assert urls and all(u.startswith(f"{endpoint}/{bucket}/aips/") for u in urls), urls[:2]


def test_the_url_can_force_path_style_and_its_own_endpoint(s3_env, new_bucket, bag):
    folder, expected = bag
    bucket = new_bucket()
    endpoint = s3_env.endpoint.replace("127.0.0.1", "localhost")
    location = S3Location("s3b", f"s3://{bucket}/x?endpoint_url={endpoint}&addressing_style=path")
    urls = []
    location.client.meta.events.register("before-send.s3.GetObject",
                                         lambda request, **_: urls.append(request.url))
    location.put_aip(new_uuid(), folder, expected)
    assert urls and all(u.startswith(f"{endpoint}/{bucket}/x/") for u in urls)


def test_configuration_problems_are_config_errors(s3_env, monkeypatch, bag, tmp_path):
    folder, expected = bag
    with pytest.raises(ConfigError, match="bucket does not exist"):
        S3Location("s3a", "s3://no-such-bucket/p").put_aip(new_uuid(), folder, expected)
    with pytest.raises(ConfigError, match="profile"):
        S3Location("s3a", "s3://b/p?profile=nobody")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(ConfigError, match="credentials"):
        S3Location("s3a", "s3://b/p").has_aip(new_uuid())


def test_an_unreachable_endpoint_is_a_storage_error(s3_env, bag):
    location = S3Location("s3a", "s3://b/p?endpoint_url=http://127.0.0.1:9&retries=2"
                                 "&connect_timeout=1")
    with pytest.raises(StorageError) as caught:
        location.has_aip(new_uuid())
    assert isinstance(caught.value.__cause__, EndpointConnectionError)


# --------------------------------------------------------------------------- errors


def _client_error(code: str, message: str = "", status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


@pytest.mark.parametrize("code, message, status, deleting, kind", [
    ("NoSuchKey", "", 404, False, ObjectNotFound),
    ("404", "", 404, False, ObjectNotFound),
    ("AccessDenied", "forbidden by object lock", 403, False, ObjectLocked),
    ("AccessDenied", "Access Denied", 403, True, ObjectLocked),
    ("AccessDenied", "Access Denied", 403, False, StorageError),
    ("NoSuchBucket", "", 404, False, ConfigError),
    ("InvalidAccessKeyId", "", 403, False, ConfigError),
    ("InternalError", "boom", 500, False, StorageError),
])
def test_map_exceptions(code, message, status, deleting, kind):
    original = _client_error(code, message, status)
    with pytest.raises(kind) as caught:
        with map_exceptions("s3://b/k", deleting=deleting):
            raise original
    assert type(caught.value) is kind or kind is StorageError
    assert caught.value.__cause__ is original
    assert "s3://b/k" in str(caught.value)


# --------------------------------------------------------------------------- writing


def test_small_files_carry_their_sha256_and_large_ones_go_up_in_parts(s3_env, new_bucket,
                                                                       moto_client, tmp_path):
    folder = tmp_path / "bag"
    big = os.urandom(12 << 20)
    expected = make_bag(folder, {"objects/big.bin": big, "objects/small.txt": b"abc"})
    bucket = new_bucket()
    location = S3Location("s3a", f"s3://{bucket}/p?part_mib=5")
    sent: dict[str, dict] = {}

    def capture(request, **_):
        key = request.url.split("?")[0].rsplit("/", 1)[-1]
        sent.setdefault(key, {}).update({
            k.lower(): v.decode() if isinstance(v, bytes) else v
            for k, v in request.headers.items() if k.lower().startswith("x-amz-checksum")})

    location.client.meta.events.register("before-send.s3.*", capture)
    uuid = new_uuid()
    location.put_aip(uuid, folder, expected)
    small = expected["data/objects/small.txt"].digests["sha256"]
    assert sent["small.txt"]["x-amz-checksum-sha256"] == \
        base64.b64encode(bytes.fromhex(small)).decode()
    assert sent["big.bin"]["x-amz-checksum-algorithm"] == "SHA256"   # per-part checksums
    etag = moto_client.head_object(Bucket=bucket, Key=f"p/{uuid}/data/objects/big.bin")["ETag"]
    assert etag.strip('"').endswith("-3"), "12 MiB in 5 MiB parts"


def test_memory_stays_bounded_by_parts_not_by_file_size(s3_env, new_bucket, tmp_path):
    folder = tmp_path / "bag"
    expected = make_bag(folder, {"objects/big.bin": os.urandom(96 << 20)})
    location = S3Location("s3a", f"s3://{new_bucket()}/p?part_mib=5&workers=4")
    tracemalloc.start()
    try:
        location.put_aip(new_uuid(), folder, expected)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 24 << 20, f"peak {peak >> 20} MiB for a 96 MiB file (5 MiB parts)"


def _corrupt_bodies(location: S3Location, operation: str, times: int) -> list[int]:
    calls = []

    def corrupt(params, **_):
        calls.append(1)
        if len(calls) <= times:
            body = params["Body"]
            data = body if isinstance(body, bytes) else body.read()
            params["Body"] = bytes([data[0] ^ 1]) + data[1:]   # same length, one bit off

    location.client.meta.events.register(f"before-parameter-build.s3.{operation}", corrupt)
    return calls


def test_a_damaged_upload_is_detected_by_read_back_and_retried(s3_env, new_bucket, tmp_path):
    folder = tmp_path / "bag"
    expected = make_bag(folder, {"objects/a.txt": b"x" * 1000})
    location = S3Location("s3a", f"s3://{new_bucket()}/p?{FAST}")
    _corrupt_bodies(location, "PutObject", times=1)
    uuid = new_uuid()
    report = location.put_aip(uuid, folder, expected)
    assert any("attempt 1 failed" in n and "differs" in n for n in report.notes), report.notes
    assert location.verify_aip(uuid, expected) == []


def test_a_multipart_upload_damaged_in_one_part_is_retried(s3_env, new_bucket, tmp_path):
    folder = tmp_path / "bag"
    expected = make_bag(folder, {"objects/big.bin": os.urandom(11 << 20)})
    location = S3Location("s3a", f"s3://{new_bucket()}/p?part_mib=5&{FAST}")
    _corrupt_bodies(location, "UploadPart", times=1)
    uuid = new_uuid()
    report = location.put_aip(uuid, folder, expected)
    assert any("big.bin: attempt 1 failed" in n for n in report.notes), report.notes
    assert location.verify_aip(uuid, expected) == []


def test_a_copy_that_keeps_reading_back_wrong_is_refused_and_invisible(s3_env, new_bucket,
                                                                       moto_client, tmp_path):
    folder = tmp_path / "bag"
    expected = make_bag(folder, {"objects/a.txt": b"x" * 1000})
    bucket = new_bucket()
    location = S3Location("s3a", f"s3://{bucket}/p?{FAST}&attempts=3")
    calls = _corrupt_bodies(location, "PutObject", times=100)
    uuid = new_uuid()
    with pytest.raises(FixityError, match="differs"):
        location.put_aip(uuid, folder, expected)
    assert len([c for c in calls]) >= 3
    assert not location.has_aip(uuid) and list(location.list_aips()) == []
    assert not keys_under(moto_client, bucket, "p/.dangan/")


def test_transient_errors_are_retried_with_backoff(s3_env, new_bucket, bag):
    folder, expected = bag
    location = S3Location("s3a", f"s3://{new_bucket()}/p?retries=4")
    uuid = new_uuid()
    location.put_aip(uuid, folder, expected)
    failures = []

    def drop(request, **_):
        if len(failures) < 2:
            failures.append(request.url)
            raise ConnectionClosedError(endpoint_url=request.url)

    location.client.meta.events.register("before-send.s3.GetObject", drop)
    with location.open(uuid, "bagit.txt") as stream:
        assert stream.read().startswith(b"BagIt-Version")
    assert len(failures) == 2
    failures.clear()
    stubborn = S3Location("s3a", f"{location.url}?retries=2")
    stubborn.client.meta.events.register(
        "before-send.s3.GetObject",
        lambda request, **_: (_ for _ in ()).throw(ConnectionClosedError(endpoint_url="x")))
    with pytest.raises(StorageError) as caught:
        stubborn.open(uuid, "bagit.txt")
    assert isinstance(caught.value.__cause__, ConnectionClosedError)


# --------------------------------------------------------------------------- interrupted runs


def _leave_an_interrupted_upload(client, bucket: str, uuid: str, folder: Path) -> None:
    """What a process killed mid-upload leaves: a multipart upload with one part, a stray
    object, an intact leftover and a leftover of the right size but wrong bytes."""
    prefix = f"p/{uuid}/"
    upload = client.create_multipart_upload(Bucket=bucket, Key=prefix + "data/objects/big.bin")
    client.upload_part(Bucket=bucket, Key=prefix + "data/objects/big.bin", PartNumber=1,
                       UploadId=upload["UploadId"], Body=os.urandom(5 << 20))
    client.put_object(Bucket=bucket, Key=prefix + "data/objects/old.tmp", Body=b"stray")
    client.put_object(Bucket=bucket, Key=prefix + "bagit.txt",
                      Body=(folder / "bagit.txt").read_bytes())
    wrong = bytearray((folder / "data/objects/a.txt").read_bytes())
    wrong[0] ^= 1
    client.put_object(Bucket=bucket, Key=prefix + "data/objects/a.txt", Body=bytes(wrong))


@pytest.mark.parametrize("lock", [False, True], ids=["plain", "versioned"])
def test_a_rerun_cleans_what_an_interrupted_upload_left(s3_env, new_bucket, moto_client,
                                                        tmp_path, lock):
    folder = tmp_path / "bag"
    expected = make_bag(folder, {"objects/a.txt": b"a" * 5000, "objects/big.bin":
                                 os.urandom(11 << 20)})
    bucket = new_bucket(lock=lock)
    location = S3Location("s3a", f"s3://{bucket}/p?part_mib=5&{FAST}")
    uuid = new_uuid()
    _leave_an_interrupted_upload(moto_client, bucket, uuid, folder)
    assert not location.has_aip(uuid), "leftovers are not an AIP"
    with pytest.raises(ObjectNotFound):
        location.open(uuid, "bagit.txt")
    report = location.put_aip(uuid, folder, expected)
    assert any("aborted 1 multipart" in n for n in report.notes), report.notes
    assert moto_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert keys_under(moto_client, bucket, f"p/{uuid}/") == \
        sorted(f"p/{uuid}/{p}" for p in expected)
    assert location.verify_aip(uuid, expected) == []
    versions = moto_client.list_object_versions(Bucket=bucket, Prefix=f"p/{uuid}/")
    assert len(versions.get("Versions", [])) == len(expected)
    assert not versions.get("DeleteMarkers")


def test_discard_pending_removes_leftovers_but_not_published_aips(s3_env, new_bucket,
                                                                 moto_client, tmp_path):
    folder = tmp_path / "bag"
    expected = make_bag(folder, {"objects/a.txt": b"a" * 5000})
    bucket = new_bucket()
    location = S3Location("s3a", f"s3://{bucket}/p")
    kept, orphan = new_uuid(), new_uuid()
    location.put_aip(kept, folder, expected)
    _leave_an_interrupted_upload(moto_client, bucket, orphan, folder)
    assert location.discard_pending() == [orphan]
    assert not keys_under(moto_client, bucket, f"p/{orphan}/")
    assert moto_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert location.verify_aip(kept, expected) == []


# --------------------------------------------------------------------------- in place, admin


def test_marker_records_every_file_and_version(s3_env, new_bucket, moto_client, bag):
    folder, expected = bag
    bucket = new_bucket(lock=True)
    location = S3Location("s3a", f"s3://{bucket}/p")
    uuid = new_uuid()
    location.put_aip(uuid, folder, expected)
    marker = json.loads(moto_client.get_object(
        Bucket=bucket, Key=f"p/.dangan/published/{uuid}")["Body"].read())
    assert set(marker["files"]) == set(expected)
    for path, entry in marker["files"].items():
        head = moto_client.head_object(Bucket=bucket, Key=f"p/{uuid}/{path}")
        assert entry["version"] == head["VersionId"]
        assert entry["sha256"] == expected[path].digests["sha256"]


def test_put_file_replaces_one_file_only_when_the_new_bytes_verify(s3_env, new_bucket, bag,
                                                                   tmp_path):
    folder, expected = bag
    location = S3Location("s3a", f"s3://{new_bucket()}/p?{FAST}")
    uuid = new_uuid()
    location.put_aip(uuid, folder, expected)
    path = "data/objects/户卷/001-申请书.txt"
    wrong = tmp_path / "wrong.txt"
    wrong.write_bytes(b"not the file")
    with pytest.raises(StorageError):
        location.put_file(uuid, path, wrong, expected[path])
    assert location.verify_aip(uuid, expected) == []
    location.delete_file(uuid, path)
    assert [p.kind for p in location.verify_aip(uuid, expected)] == ["missing"]
    location.put_file(uuid, path, folder / path, expected[path])
    assert location.verify_aip(uuid, expected) == []
    assert not [k for k in keys_under(location.client, location.bucket, "p/.dangan/replace/")]


def test_admin_objects_live_outside_every_aip(s3_env, new_bucket, moto_client):
    bucket = new_bucket()
    location = S3Location("s3a", f"s3://{bucket}/p")
    with pytest.raises(ObjectNotFound):
        location.read_admin_object("anchor.json")
    location.write_admin_object("anchor.json", b'{"seq": 1}')
    location.write_admin_object("anchor.json", b'{"seq": 2}')
    assert location.read_admin_object("anchor.json") == b'{"seq": 2}'
    assert keys_under(moto_client, bucket, "p/") == ["p/.dangan/admin/anchor.json"]
    assert list(location.list_aips()) == []


def test_moto_object_lock_refuses_deleting_a_locked_copy(s3_env, new_bucket, moto_client, bag):
    folder, expected = bag
    bucket = new_bucket(lock=True)
    location = S3Location("s3a", f"s3://{bucket}/p")
    uuid = new_uuid()
    location.put_aip(uuid, folder, expected)
    assert location.set_retention(uuid, RetentionLock(legal_hold=True)) == "server"
    assert location.get_retention(uuid) == RetentionLock("COMPLIANCE", None, True)
    with pytest.raises(ObjectLocked):
        location.delete_aip(uuid)
    assert location.verify_aip(uuid, expected) == []
    location.set_retention(uuid, RetentionLock(legal_hold=False))
    location.delete_aip(uuid)
    assert not moto_client.list_object_versions(Bucket=bucket).get("Versions")

