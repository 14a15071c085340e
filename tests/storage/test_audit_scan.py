"""The reading engine: one read through every algorithm, the same digests in-process and in
worker processes, bounded memory whatever the file size, errors reported per file."""

from __future__ import annotations

import hashlib
import io
import os
import tracemalloc
from pathlib import Path

import pytest

from policies.loader import LocationSpec
from storage.fixity import hashing, scan
from storage.fixity.scan import CHUNK, DEPTH, FileTask, Scanner, batches, hash_stream
from storage.locations import open_location

ALGORITHMS = ("sha256", "sm3", "md5")


def _expected(data: bytes) -> dict[str, str]:
    return {name: hashlib.new(name, data).hexdigest() for name in ALGORITHMS}


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 17])
@pytest.mark.parametrize("large", [False, True])
def test_every_algorithm_in_one_read(size, large):
    data = os.urandom(size)
    reads = []

    class Counting(io.BytesIO):
        def read(self, n=-1):
            chunk = super().read(n)
            reads.append(len(chunk))
            return chunk

        def readinto(self, buffer):
            count = super().readinto(buffer)
            reads.append(count)
            return count

    got_size, digests = hash_stream(Counting(data), ALGORITHMS, large=large)
    assert got_size == size and digests == _expected(data)
    assert sum(reads) == size                  # every byte read exactly once


def test_a_stream_without_readinto_is_hashed_too():
    data = os.urandom(3 * CHUNK + 5)

    class ReadOnly:
        def __init__(self) -> None:
            self.inner = io.BytesIO(data)

        def read(self, n: int = -1) -> bytes:
            return self.inner.read(n)

    assert hash_stream(ReadOnly(), ALGORITHMS, large=True)[1] == _expected(data)


@pytest.mark.parametrize("algorithms", [("sha256",), ("sha256", "md5")])
def test_memory_stays_bounded_for_a_large_file(tmp_path, algorithms):
    big = tmp_path / "big.bin"
    with open(big, "wb") as handle:
        handle.truncate(256 * CHUNK)           # 256 MiB (sparse: reads are cheap)
    tracemalloc.start()
    try:
        with open(big, "rb", buffering=0) as stream:
            size, digests = hash_stream(stream, algorithms, large=True)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size == 256 * CHUNK
    assert digests == {a: hashlib.new(a, bytes(256 * CHUNK)).hexdigest() for a in algorithms}
    assert peak < (DEPTH + 4) * CHUNK, peak     # the buffer pool, not the file


@pytest.mark.parametrize("size", [1, CHUNK - 1, CHUNK, 5 * CHUNK + 17])
@pytest.mark.parametrize("algorithms", [("sha256",), ALGORITHMS])
def test_a_regular_file_is_hashed_through_its_mapping(tmp_path, monkeypatch, size, algorithms):
    data = os.urandom(size)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    mapped = []
    real_map = hashing._map
    monkeypatch.setattr(hashing, "_map", lambda stream: mapped.append(1) or real_map(stream))
    progress = []
    with open(path, "rb", buffering=0) as stream:
        got = hash_stream(stream, algorithms, large=True, progress=progress.append)
    assert mapped and got == (size, {a: hashlib.new(a, data).hexdigest() for a in algorithms})
    assert sum(progress) == size


def test_an_empty_or_special_file_is_read_not_mapped(tmp_path):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with open(empty, "rb") as stream:
        assert hashing._map(stream) is None
    assert hashing._map(io.BytesIO(b"abc")) is None
    read, write = os.pipe()
    os.write(write, b"xyz")
    os.close(write)
    with os.fdopen(read, "rb") as stream:
        assert hashing._map(stream) is None
        assert hash_stream(stream, ("sha256",), large=True)[1] == {
            "sha256": hashlib.sha256(b"xyz").hexdigest()}

def _location(tmp_path: Path, files: dict[str, bytes]):
    root = tmp_path / "store"
    for path, data in files.items():
        (root / "aip" / path).parent.mkdir(parents=True, exist_ok=True)
        (root / "aip" / path).write_bytes(data)
    spec = LocationSpec("t", root.as_uri())
    return spec, open_location(spec, fsync=False)


def test_worker_processes_give_the_same_results(tmp_path, monkeypatch):
    files = {f"data/f{i:03d}.bin": os.urandom(i * 997) for i in range(60)}
    files["data/large.bin"] = os.urandom(6 * CHUNK + 3)
    spec, location = _location(tmp_path, files)
    tasks = [FileTask(p, len(d), ALGORITHMS) for p, d in files.items()]
    tasks.append(FileTask("data/vanished.bin", 10, ("sha256",)))
    monkeypatch.setattr(scan, "INLINE_MAX_FILES", 0)      # force the worker processes

    with Scanner(2, cold=True, batch_files=7) as scanner:
        results = [r for batch in scanner.scan(spec, location, "aip", tasks) for r in batch]
        assert scanner._pool is not None
        assert scanner.bytes_read == sum(len(d) for d in files.values())

    by_path = {r.path: r for r in results}
    assert len(results) == len(tasks)
    for path, data in files.items():
        assert by_path[path].size == len(data) and by_path[path].digests == _expected(data)
    assert by_path["data/vanished.bin"].error and "not found" in by_path["data/vanished.bin"].error


def test_small_jobs_run_in_process(tmp_path):
    files = {"data/a.txt": b"a", "data/b.txt": b"bb"}
    spec, location = _location(tmp_path, files)
    with Scanner(2) as scanner:
        results = [r for batch in scanner.scan(spec, location, "aip",
                                               [FileTask(p, len(d), ("sha256",))
                                                for p, d in files.items()]) for r in batch]
        assert scanner._pool is None
    assert {r.path: r.digests["sha256"] for r in results} == {
        p: hashlib.sha256(d).hexdigest() for p, d in files.items()}


def test_batches_keep_large_files_alone_and_small_ones_together():
    tasks = [FileTask(f"s{i}", 10, ("sha256",)) for i in range(10)]
    tasks += [FileTask("big", 10 * CHUNK, ("sha256",))]
    groups = batches(tasks, max_files=4)
    assert groups[0] == [tasks[-1]]
    assert [len(g) for g in groups[1:]] == [4, 4, 2]


def test_workers_start_cleanly_while_other_threads_run(tmp_path, monkeypatch):
    """In a threaded web server the workers come from a forkserver, never a fork of a
    process whose other threads may hold locks."""
    import threading

    files = {f"data/f{i}.bin": os.urandom(2000 + i) for i in range(20)}
    spec, location = _location(tmp_path, files)
    monkeypatch.setattr(scan, "INLINE_MAX_FILES", 0)
    stop = threading.Event()
    busy = threading.Thread(target=stop.wait, daemon=True)
    busy.start()
    try:
        with Scanner(2, batch_files=5) as scanner:
            results = [r for batch in scanner.scan(
                spec, location, "aip", [FileTask(p, len(d), ("sha256",)) for p, d in files.items()])
                for r in batch]
            assert scanner._pool._mp_context.get_start_method() == "forkserver"
    finally:
        stop.set()
    assert {r.path: r.digests["sha256"] for r in results} == {
        p: hashlib.sha256(d).hexdigest() for p, d in files.items()}


def test_small_local_files_are_read_through_a_descriptor(tmp_path):
    """The descriptor path gives the same digests and errors as a stream would, and refuses
    what is not a regular file (a FIFO would block a stream's read)."""
    data = os.urandom(5000)
    _spec, location = _location(tmp_path, {"data/a.bin": data, "data/empty": b""})
    uuid = "aip"
    got = scan.read_file(location, uuid, FileTask("data/a.bin", 5000, ALGORITHMS), cold=True)
    assert (got.size, got.digests, got.error) == (
        5000, {a: hashlib.new(a, data).hexdigest() for a in ALGORITHMS}, None)
    empty = scan.read_file(location, uuid, FileTask("data/empty", 0, ("sha256",)), cold=False)
    assert (empty.size, empty.digests) == (0, {"sha256": hashlib.sha256(b"").hexdigest()})
    missing = scan.read_file(location, uuid, FileTask("data/gone", 10, ("sha256",)), cold=False)
    assert missing.size == -1 and missing.error.startswith("ObjectNotFound: ")
    os.mkfifo(tmp_path / "store" / uuid / "data" / "fifo")
    fifo = scan.read_file(location, uuid, FileTask("data/fifo", 10, ("sha256",)), cold=False)
    assert fifo.size == -1 and "not a regular file" in fifo.error
