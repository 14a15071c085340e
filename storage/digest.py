"""Streaming digests: every algorithm of the fixity policy in one read of the bytes.

Large files are pipelined: the thread that reads hands each chunk to one worker per digest
algorithm (and to a writer when copying), so reading, hashing and writing overlap on both
cores (hashlib and file I/O release the GIL). Memory stays bounded by ``QUEUE_DEPTH`` chunks
per worker whatever the file size. Small files are handled inline, where threads cost more
than they save.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20
QUEUE_DEPTH = 8
PIPELINE_MIN = 4 * CHUNK   # files smaller than this are hashed inline

_STOP = object()


def new_hashers(algorithms: Iterable[str]) -> dict[str, "hashlib._Hash"]:
    """Return a fresh hashlib object per algorithm name."""
    return {name: hashlib.new(name) for name in algorithms}


class _Worker(threading.Thread):
    """A thread applying ``func`` to each chunk it is given, in order."""

    def __init__(self, func: Callable[[bytes], object]) -> None:
        super().__init__(daemon=True)
        self.func = func
        self.chunks: queue.Queue = queue.Queue(QUEUE_DEPTH)
        self.error: BaseException | None = None

    def run(self) -> None:
        while (chunk := self.chunks.get()) is not _STOP:
            if self.error is None:
                try:
                    self.func(chunk)
                except BaseException as exc:  # re-raised in the reading thread
                    self.error = exc


def _pump(chunks: Iterator[bytes], sinks: list[Callable[[bytes], object]]) -> int:
    """Feed every chunk to every sink, each sink in its own thread; return the byte count."""
    workers = [_Worker(sink) for sink in sinks]
    for worker in workers:
        worker.start()
    size = 0
    try:
        for chunk in chunks:
            size += len(chunk)
            for worker in workers:
                if worker.error is not None:
                    raise worker.error
                worker.chunks.put(chunk)
    finally:
        for worker in workers:
            worker.chunks.put(_STOP)
        for worker in workers:
            worker.join()
    for worker in workers:
        if worker.error is not None:
            raise worker.error
    return size


def read_chunks(stream: BinaryIO, chunk: int = CHUNK) -> Iterator[bytes]:
    """Yield a stream's bytes in chunks of at most ``chunk`` bytes."""
    while block := stream.read(chunk):
        yield block


def digest_stream(chunks: Iterable[bytes], algorithms: Iterable[str], *,
                  expected_size: int | None = None,
                  write: Callable[[bytes], object] | None = None) -> tuple[int, dict[str, str]]:
    """Digest a stream of chunks with every algorithm, optionally writing the chunks too.

    Arguments:
        chunks: the bytes, in order.
        algorithms: hashlib names.
        expected_size: when known and small, the work is done inline without threads.
        write: called with each chunk (for copying) in step with the hashing.

    Returns:
        (byte count, {algorithm: hex digest}).
    """
    hashers = new_hashers(algorithms)
    sinks: list[Callable[[bytes], object]] = [h.update for h in hashers.values()]
    if write is not None:
        sinks.append(write)
    if expected_size is not None and expected_size < PIPELINE_MIN:
        size = 0
        for chunk in chunks:
            size += len(chunk)
            for sink in sinks:
                sink(chunk)
    else:
        size = _pump(iter(chunks), sinks)
    return size, {name: h.hexdigest() for name, h in hashers.items()}


def hash_file(path: str | os.PathLike[str], algorithms: Iterable[str]) -> tuple[int, dict[str, str]]:
    """Read a file once and return (size, {algorithm: hex digest})."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if size < PIPELINE_MIN:
            return _digest_fd(fd, algorithms)
        return digest_stream(_fd_chunks(fd), algorithms, expected_size=size)
    finally:
        os.close(fd)


def _digest_fd(fd: int, algorithms: Iterable[str], dst_fd: int | None = None,
               first: Callable[[bytes], object] | None = None) -> tuple[int, dict[str, str]]:
    """Digest (and copy to ``dst_fd``) what remains of a small file, inline.

    Plain ``os.read`` calls and no iterator, queue or callback per chunk: for files of a few
    KiB this overhead is most of the cost, and a transfer may hold hundreds of thousands.
    """
    hashers = [(name, hashlib.new(name)) for name in algorithms]
    size = 0
    while block := os.read(fd, CHUNK):
        if first is not None and size == 0:
            first(block)
        size += len(block)
        for _name, hasher in hashers:
            hasher.update(block)
        if dst_fd is not None:
            _write_all(dst_fd, block)
    return size, {name: hasher.hexdigest() for name, hasher in hashers}


def copy_and_hash(src: str | os.PathLike[str], dst: str | os.PathLike[str],
                  algorithms: Iterable[str], *, fsync: bool = False,
                  exclusive: bool = True, first: Callable[[bytes], object] | None = None,
                  writeback: bool = False) -> tuple[int, dict[str, str]]:
    """Copy ``src`` to ``dst`` while digesting the bytes read, in one pass.

    The destination is created exclusively (an existing file is an error unless
    ``exclusive`` is false). Links are never followed on the source side.

    Arguments:
        first: called with the first chunk read (at most :data:`CHUNK` bytes; the whole
            file when it is that small), so that a caller can look at the bytes without
            reading the file again. Not called for an empty file.
        writeback: start writing a large file's bytes to disk while it is copied (they
            will be flushed later anyway, and the disk then works beside the hashing).

    Returns:
        (byte count, {algorithm: hex digest of the bytes copied}).
    """
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    src_fd = os.open(src, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        dst_fd = os.open(dst, flags, 0o644)
        try:
            size = os.fstat(src_fd).st_size
            if size < PIPELINE_MIN:
                result = _digest_fd(src_fd, algorithms, dst_fd, first)
            else:
                chunks = _fd_chunks(src_fd)
                if first is not None:
                    chunks = _peek_first(chunks, first)
                written = [0]

                def write(block: bytes) -> None:
                    _write_all(dst_fd, block)
                    if writeback:
                        _start_writeback(dst_fd, written[0], len(block))
                    written[0] += len(block)

                result = digest_stream(chunks, algorithms, expected_size=size, write=write)
            if fsync:
                os.fsync(dst_fd)
            return result
        finally:
            os.close(dst_fd)
    finally:
        os.close(src_fd)


def _fd_chunks(fd: int) -> Iterator[bytes]:
    while block := os.read(fd, CHUNK):
        yield block


def _peek_first(chunks: Iterator[bytes], first: Callable[[bytes], object]) -> Iterator[bytes]:
    for index, chunk in enumerate(chunks):
        if index == 0:
            first(chunk)
        yield chunk


@functools.cache
def _sync_file_range() -> Callable[..., int] | None:
    """Linux's sync_file_range(2) through libc, or None where there is none."""
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (AttributeError, OSError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    return function


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing a range of a file to disk, without waiting."""
    function = _sync_file_range()
    if function is not None:
        function(fd, offset, length, 2)   # SYNC_FILE_RANGE_WRITE


def _write_all(fd: int, data: bytes) -> None:
    written = os.write(fd, data)
    if written == len(data):
        return
    view = memoryview(data)[written:]
    while view:
        written = os.write(fd, view)
        view = view[written:]


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a directory entry to disk (after a rename or a create)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_digests(path: Path, algorithms: Iterable[str]) -> dict[str, str]:
    """Shorthand for the digests of a file, without its size."""
    return hash_file(path, algorithms)[1]


def map_files(func: Callable[[object], object], items: list, workers: int,
              sizes: list[int] | None = None, batch_bytes: int = 8 << 20) -> list:
    """Apply ``func`` to every item on ``workers`` threads, keeping the order.

    Small files are grouped into batches of about ``batch_bytes`` so that thread hand-offs
    do not cost more than the work; one large file is a batch of its own.
    """
    from concurrent.futures import ThreadPoolExecutor

    if workers <= 1 or len(items) <= 1:
        return [func(item) for item in items]
    batches: list[list] = [[]]
    filled = 0
    for index, item in enumerate(items):
        size = sizes[index] if sizes else batch_bytes
        if batches[-1] and filled + size > batch_bytes:
            batches.append([])
            filled = 0
        batches[-1].append(item)
        filled += size
    with ThreadPoolExecutor(workers) as pool:
        done = pool.map(lambda batch: [func(item) for item in batch], batches)
        return [result for batch in done for result in batch]
