"""The Location interface, one suite run against the filesystem and against S3 (moto_server).

Each backend gets a ``tamper`` helper that changes or removes stored bytes behind the
location's back, so that the tests can prove that verification really reads them.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid as uuidlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from policies.errors import FixityError, ObjectNotFound, StorageError
from storage.locations import FilesystemLocation, Location
from storage.locations.base import ExpectedFile, RetentionLock, verify_stored_bag
from storage.locations.s3 import S3Location


@dataclass
class Backend:
    """A location under test and ways to change what it stores behind its back."""

    location: Location
    replace: Callable[[str, str, bytes], None]     # (uuid, path, new bytes)
    remove: Callable[[str, str], None]             # (uuid, path)
    raw_keys: Callable[[], list[str]]              # every stored name, whatever it is


def _filesystem(tmp_path: Path) -> Backend:
    root = tmp_path / "aips"
    location = FilesystemLocation("local", root, fsync=False)

    def replace(uuid: str, path: str, body: bytes) -> None:
        (root / uuid / path).write_bytes(body)

    def remove(uuid: str, path: str) -> None:
        (root / uuid / path).unlink()

    def raw_keys() -> list[str]:
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

    return Backend(location, replace, remove, raw_keys)


def _s3(bucket: str, client) -> Backend:
    location = S3Location("s3a", f"s3://{bucket}/some/prefix")

    def replace(uuid: str, path: str, body: bytes) -> None:
        client.put_object(Bucket=bucket, Key=f"some/prefix/{uuid}/{path}", Body=body)

    def remove(uuid: str, path: str) -> None:
        client.delete_object(Bucket=bucket, Key=f"some/prefix/{uuid}/{path}")

    def raw_keys() -> list[str]:
        listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
        return sorted(o["Key"] for o in listed)

    return Backend(location, replace, remove, raw_keys)


@pytest.fixture(params=["filesystem", "s3"])
def backend(request, tmp_path) -> Backend:
    if request.param == "filesystem":
        return _filesystem(tmp_path)
    request.getfixturevalue("s3_env")
    bucket = request.getfixturevalue("new_bucket")()
    return _s3(bucket, request.getfixturevalue("moto_client"))


def new_uuid() -> str:
    return str(uuidlib.uuid4())


def test_put_publishes_a_verified_copy_listed_and_readable(backend, bag):
    folder, expected = bag
    location, uuid = backend.location, new_uuid()
    assert not location.has_aip(uuid) and list(location.list_aips()) == []
    seen = []
    report = location.put_aip(uuid, folder, expected, progress=seen.append)
    assert report.files == len(expected) and report.bytes == sum(e.size for e in expected.values())
    assert not report.reused and report.url == location.url_for(uuid)
    assert sum(seen) == report.bytes, "progress counts every verified byte"
    assert location.has_aip(uuid) and list(location.list_aips()) == [uuid]
    stored = {i.path: i.size for i in location.list_files(uuid)}
    assert stored == {p: e.size for p, e in expected.items()}
    head = location.head(uuid, "data/objects/户卷/002-照片.jpg")
    assert head.size == 1 << 20
    with location.open(uuid, "data/objects/户卷/001-申请书.txt") as stream:
        body = stream.read()
    assert hashlib.sha256(body).hexdigest() == \
        expected["data/objects/户卷/001-申请书.txt"].digests["sha256"]
    assert location.verify_aip(uuid, expected) == []
    assert verify_stored_bag(location, uuid, {p: e for p, e in expected.items()
                                              if p.startswith("data/objects/")}) == []


def test_the_published_copy_holds_exactly_the_bag(backend, bag):
    folder, expected = bag
    uuid = new_uuid()
    backend.location.put_aip(uuid, folder, expected)
    inside = [k.split(f"{uuid}/", 1)[1] for k in backend.raw_keys() if f"{uuid}/" in k]
    assert sorted(inside) == sorted(expected), "no marker or extra object inside the bag"


def test_byte_ranges(backend, bag):
    folder, expected = bag
    uuid = new_uuid()
    backend.location.put_aip(uuid, folder, expected)
    path = "data/objects/户卷/002-照片.jpg"
    whole = (folder / path).read_bytes()
    cases = [(0, 10), (5, 6), (1000, None), ((1 << 20) - 3, None), (100, 100), (1 << 21, None)]
    for start, end in cases:
        with backend.location.open(uuid, path, start, end) as stream:
            assert stream.read() == whole[start:end], (start, end)


def test_a_copy_that_reads_back_wrong_never_becomes_visible(backend, bag):
    folder, expected = bag
    uuid = new_uuid()
    path = "data/objects/户卷/001-申请书.txt"
    lying = dict(expected)
    lying[path] = ExpectedFile(expected[path].size, {"sha256": "0" * 64})
    with pytest.raises(StorageError):    # FixityError, or "changed while being stored"
        backend.location.put_aip(uuid, folder, lying)
    assert not backend.location.has_aip(uuid)
    assert list(backend.location.list_aips()) == []
    with pytest.raises(ObjectNotFound):
        list(backend.location.list_files(uuid))


def test_putting_again_verifies_and_reuses_the_published_copy(backend, bag):
    folder, expected = bag
    uuid = new_uuid()
    backend.location.put_aip(uuid, folder, expected)
    again = backend.location.put_aip(uuid, folder, expected)
    assert again.reused and backend.location.has_aip(uuid)


def test_a_damaged_published_copy_is_not_reused(backend, bag):
    folder, expected = bag
    uuid = new_uuid()
    backend.location.put_aip(uuid, folder, expected)
    backend.replace(uuid, "data/objects/户卷/001-申请书.txt", b"tampered")
    with pytest.raises(FixityError):
        backend.location.put_aip(uuid, folder, expected)


def test_verify_reads_every_byte_and_reports_each_problem(backend, bag):
    folder, expected = bag
    uuid = new_uuid()
    backend.location.put_aip(uuid, folder, expected)
    jpg = "data/objects/户卷/002-照片.jpg"
    body = bytearray((folder / jpg).read_bytes())
    body[500_000] ^= 0xFF                          # same size, one bit flipped
    backend.replace(uuid, jpg, bytes(body))
    backend.remove(uuid, "data/objects/空文件.txt")
    backend.replace(uuid, "data/objects/stray.txt", b"not in the bag")
    problems = {(p.kind, p.path) for p in backend.location.verify_aip(uuid, expected)}
    assert problems == {("changed", jpg), ("missing", "data/objects/空文件.txt"),
                        ("untracked", "data/objects/stray.txt")}


def test_unknown_aips_and_paths_are_not_found(backend, bag):
    folder, expected = bag
    location, uuid = backend.location, new_uuid()
    for call in (lambda: list(location.list_files(uuid)), lambda: location.delete_aip(uuid),
                 lambda: location.head(uuid, "bagit.txt"),
                 lambda: location.open(uuid, "bagit.txt")):
        with pytest.raises(ObjectNotFound):
            call()
    location.put_aip(uuid, folder, expected)
    with pytest.raises(ObjectNotFound):
        location.head(uuid, "data/objects/nothing.txt")
    for bad in ("../x", "/etc/passwd"):
        with pytest.raises(ObjectNotFound):
            location.open(uuid, bad).read()
    with pytest.raises(ObjectNotFound):
        location.has_aip("../escape")


def test_delete_removes_the_copy_entirely(backend, bag):
    folder, expected = bag
    keep, gone = new_uuid(), new_uuid()
    backend.location.put_aip(keep, folder, expected)
    backend.location.put_aip(gone, folder, expected)
    backend.location.delete_aip(gone)
    assert not backend.location.has_aip(gone)
    assert list(backend.location.list_aips()) == [keep]
    assert not [k for k in backend.raw_keys() if gone in k]
    assert backend.location.verify_aip(keep, expected) == []


def test_retention_without_a_server_lock_is_left_to_the_catalogue(backend, bag):
    folder, expected = bag
    uuid = new_uuid()
    backend.location.put_aip(uuid, folder, expected)
    assert backend.location.set_retention(uuid, RetentionLock(legal_hold=True)) == "catalogue"
    assert backend.location.get_retention(uuid) is None


def test_put_does_not_touch_the_source_folder(backend, bag):
    folder, expected = bag
    before = {p: (folder / p).read_bytes() for p in expected}
    backend.location.put_aip(new_uuid(), folder, expected)
    assert {p: (folder / p).read_bytes() for p in expected} == before
    shutil.rmtree(folder)   # the stored copy does not depend on the source any more
