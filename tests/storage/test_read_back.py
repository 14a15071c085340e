"""Large files are read back while they are written; storage counts that read-back only for
the very file it read, and a copy that reads back wrong is refused either way."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

import storage.aip.digest as digest
from policies.errors import FixityError
from storage.aip import CHUNK, PIPELINE_MIN, copy_hash_read_back
from storage.locations import FilesystemLocation
from storage.locations import ExpectedFile

SIZE = PIPELINE_MIN + 3 * CHUNK + 12345      # pipelined, with a short last chunk


def _big(path: Path, size: int = SIZE) -> bytes:
    data = hashlib.shake_256(b"read-back").digest(size)
    path.write_bytes(data)
    return data


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("mode", ["memory", "disk"])
def test_a_large_copy_is_read_back_while_written(tmp_path, mode):
    if mode == "disk" and not digest._can_read_from_disk():
        pytest.skip("sync_file_range(2) or posix_fadvise is not available here")
    data = _big(tmp_path / "src")
    size, digests, proof = copy_hash_read_back(tmp_path / "src", tmp_path / "dst",
                                               ["sha256", "md5"], read_back=mode)
    assert size == len(data) and (tmp_path / "dst").read_bytes() == data
    assert digests == {"sha256": _sha(data), "md5": hashlib.md5(data).hexdigest()}
    assert proof is not None and proof.digests == digests
    assert proof.from_disk is (mode == "disk")
    assert proof.holds_for(tmp_path / "dst")
    os.rename(tmp_path / "dst", tmp_path / "moved")        # a rename keeps the identity
    assert proof.holds_for(tmp_path / "moved")
    with open(tmp_path / "moved", "r+b") as handle:        # a write does not
        handle.seek(10)
        handle.write(b"x")
    assert not proof.holds_for(tmp_path / "moved")


def test_small_files_and_no_mode_give_no_read_back(tmp_path):
    (tmp_path / "small").write_bytes(b"abc")
    assert copy_hash_read_back(tmp_path / "small", tmp_path / "a", ["sha256"],
                               read_back="memory")[2] is None
    _big(tmp_path / "src")
    assert copy_hash_read_back(tmp_path / "src", tmp_path / "b", ["sha256"],
                               read_back=None)[2] is None


def test_the_read_back_sees_what_was_written_not_what_was_read(tmp_path, monkeypatch):
    """A write that goes wrong gives a read-back digest different from the source's."""
    data = _big(tmp_path / "src")
    calls = []

    def flaky(src_fd: int, dst_fd: int, offset: int, view) -> None:
        calls.append(offset)
        block = bytearray(view)
        if len(calls) == 2:                      # the second chunk lands with one bit flipped
            block[100] ^= 1
        os.write(dst_fd, block)

    monkeypatch.setattr(digest, "_copy_range", flaky)
    _, digests, proof = copy_hash_read_back(tmp_path / "src", tmp_path / "dst", ["sha256"],
                                            read_back="memory")
    assert digests["sha256"] == _sha(data)
    assert proof.digests["sha256"] == _sha((tmp_path / "dst").read_bytes()) != _sha(data)


def _bag(tmp_path: Path, mode: str | None) -> tuple[Path, dict[str, ExpectedFile], bytes]:
    """A one-file bag staged as ingest stages it: the payload copied with a read-back."""
    data = _big(tmp_path / "source.bin")
    bag = tmp_path / "bag"
    (bag / "data").mkdir(parents=True)
    size, digests, proof = copy_hash_read_back(tmp_path / "source.bin", bag / "data/big.bin",
                                               ["sha256"], read_back=mode)
    return bag, {"data/big.bin": ExpectedFile(size, digests, proof)}, data


def _count_rereads(monkeypatch) -> list[str]:
    import storage.locations.filesystem as filesystem

    reread: list[str] = []
    real = filesystem.hash_file

    def counting(path, algorithms):
        reread.append(Path(path).name)
        return real(path, algorithms)

    monkeypatch.setattr(filesystem, "hash_file", counting)
    return reread


def test_a_moved_file_counts_its_read_back(tmp_path, monkeypatch):
    location = FilesystemLocation("local", tmp_path / "aips", fsync=False)
    assert location.read_back_for(tmp_path) == "memory"
    bag, expected, data = _bag(tmp_path, "memory")
    reread = _count_rereads(monkeypatch)
    location.put_aip("u1", bag, expected, move=True)
    assert reread == []
    with location.open("u1", "data/big.bin") as stream:
        assert stream.read() == data


def test_a_changed_file_is_read_again_and_refused(tmp_path, monkeypatch):
    location = FilesystemLocation("local", tmp_path / "aips", fsync=False)
    bag, expected, _ = _bag(tmp_path, "memory")
    with open(bag / "data/big.bin", "r+b") as handle:   # changed after its read-back
        handle.write(b"changed")
    reread = _count_rereads(monkeypatch)
    with pytest.raises(FixityError, match="big.bin"):
        location.put_aip("u1", bag, expected, move=True)
    assert reread == ["big.bin"] and not location.has_aip("u1")


def test_a_read_back_that_disagrees_is_refused(tmp_path):
    location = FilesystemLocation("local", tmp_path / "aips", fsync=False)
    bag, expected, _ = _bag(tmp_path, "memory")
    want = expected["data/big.bin"]
    wrong = want.read_back.__class__({"sha256": "0" * 64}, False, want.read_back.identity)
    expected = {"data/big.bin": ExpectedFile(want.size, want.digests, wrong)}
    with pytest.raises(FixityError, match="big.bin"):
        location.put_aip("u1", bag, expected, move=True)
    assert not location.has_aip("u1")


def test_a_flushing_location_wants_the_read_back_from_disk(tmp_path, monkeypatch):
    location = FilesystemLocation("local", tmp_path / "aips", fsync=True)
    assert location.read_back_for(tmp_path) == "disk"
    bag, expected, _ = _bag(tmp_path, "memory")         # read back from memory only
    reread = _count_rereads(monkeypatch)
    location.put_aip("u1", bag, expected, move=True)
    assert reread == ["big.bin"]


def test_a_copy_is_read_back_as_it_is_written(tmp_path, monkeypatch):
    """Without ``move`` the location copies, reading its own copy back meanwhile; the
    staging read-back (of another file) does not count."""
    location = FilesystemLocation("local", tmp_path / "aips", fsync=False)
    bag, expected, data = _bag(tmp_path, "memory")
    reread = _count_rereads(monkeypatch)
    location.put_aip("u1", bag, expected, move=False)
    assert reread == [] and (bag / "data/big.bin").exists()
    with location.open("u1", "data/big.bin") as stream:
        assert stream.read() == data


def test_a_copy_written_wrong_is_refused(tmp_path, monkeypatch):
    location = FilesystemLocation("local", tmp_path / "aips", fsync=False)
    bag, expected, _ = _bag(tmp_path, None)

    def flaky(src_fd: int, dst_fd: int, offset: int, view) -> None:
        block = bytearray(view)
        block[0] ^= 1
        os.write(dst_fd, block)

    monkeypatch.setattr(digest, "_copy_range", flaky)
    with pytest.raises(FixityError, match="big.bin"):
        location.put_aip("u1", bag, expected, move=False)
    assert not location.has_aip("u1")


def test_staging_refuses_a_file_whose_copy_reads_back_differently(tmp_path, monkeypatch):
    from ingest.staging import Limits, stage
    from policies.errors import RejectedError

    (tmp_path / "transfer").mkdir()
    _big(tmp_path / "transfer" / "scan.tif")
    before = (tmp_path / "transfer" / "scan.tif").read_bytes()

    def flaky(src_fd: int, dst_fd: int, offset: int, view) -> None:
        block = bytearray(view)
        block[-1] ^= 1
        os.write(dst_fd, block)

    monkeypatch.setattr(digest, "_copy_range", flaky)
    with pytest.raises(RejectedError, match="scan.tif.*reads back differently"):
        stage(tmp_path / "transfer", tmp_path / "staged", ("sha256",),
              Limits(1 << 40, 1 << 20, 1000), read_back="memory")
    assert (tmp_path / "transfer" / "scan.tif").read_bytes() == before
