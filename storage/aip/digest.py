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
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from storage.locations import FILE_MODE

CHUNK = 1 << 20
QUEUE_DEPTH = 8
PIPELINE_MIN = 4 * CHUNK   # files smaller than this are hashed inline

_STOP = object()


def new_hashers(algorithms: Iterable[str]) -> dict[str, "hashlib._Hash"]:
    """Return a fresh hashlib object per algorithm name."""
    return {name: hashlib.new(name) for name in algorithms}


class _Worker(threading.Thread):
    """A thread applying ``func`` to each chunk it is given, in order.

    With ``report`` it puts a token on :attr:`done` after each chunk (even one it skipped
    after an error), so that the reading thread knows when a buffer is free again.
    """

    def __init__(self, func: Callable[[bytes], object], report: bool = False) -> None:
        super().__init__(daemon=True)
        self.func = func
        self.chunks: queue.Queue = queue.Queue(0 if report else QUEUE_DEPTH)
        self.done: queue.SimpleQueue | None = queue.SimpleQueue() if report else None
        self.error: BaseException | None = None

    def run(self) -> None:
        while (chunk := self.chunks.get()) is not _STOP:
            if self.error is None:
                try:
                    self.func(chunk)
                except BaseException as exc:  # re-raised in the reading thread
                    self.error = exc
            if self.done is not None:
                self.done.put(None)


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


@dataclass(frozen=True)
class ReadBack:
    """A written file was read back, range by range, while it was being written.

    Attributes:
        digests: algorithm -> hex digest of the bytes read back from the written file.
        from_disk: every range was flushed to the device and dropped from the page cache
            before it was read, so the bytes came from the disk and not from memory.
        identity: (device, inode, size, modification time in ns) of the file once the
            read-back had finished.
    """

    digests: Mapping[str, str]
    from_disk: bool
    identity: tuple[int, int, int, int]

    def holds_for(self, path: str | os.PathLike[str]) -> bool:
        """Whether ``path`` is still the file that was read back: same inode, size and
        modification time (a rename keeps them, any write changes them)."""
        try:
            st = os.lstat(path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) == self.identity


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
    size, digests, _ = copy_hash_read_back(src, dst, algorithms, fsync=fsync,
                                           exclusive=exclusive, first=first,
                                           writeback=writeback, read_back=None)
    return size, digests


def copy_hash_read_back(src: str | os.PathLike[str], dst: str | os.PathLike[str],
                        algorithms: Iterable[str], *, read_back: str | None,
                        fsync: bool = False, exclusive: bool = True,
                        first: Callable[[bytes], object] | None = None,
                        writeback: bool = False) -> tuple[int, dict[str, str], ReadBack | None]:
    """:func:`copy_and_hash`, and for a large file the written copy read back meanwhile.

    The copy is read back range by range, a little behind the writing, on another thread:
    the source is digested, written and the copy re-read and digested at once, on both
    cores. ``read_back`` is ``"memory"`` (the written bytes as the page cache holds them),
    ``"disk"`` (each range flushed to the device and evicted before it is read; needs
    Linux's sync_file_range) or None. Small files, and ``"disk"`` where it cannot be done,
    give no :class:`ReadBack`: the caller reads those back afterwards.

    Returns:
        (byte count, {algorithm: hex digest of the bytes copied}, ReadBack or None). The
        read-back digests are the caller's to compare: a copy that reads back differently
        is reported, never repaired here.
    """
    algorithms = list(algorithms)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    src_fd = os.open(src, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        dst_fd = os.open(dst, flags, FILE_MODE)   # owner only (storage.locations.permissions)
        try:
            size = os.fstat(src_fd).st_size
            checked = None
            if size < PIPELINE_MIN:
                copied, digests = _digest_fd(src_fd, algorithms, dst_fd, first)
            else:
                if read_back == "disk" and not _can_read_from_disk():
                    read_back = None
                back = _ReadBackWorker(dst, algorithms, read_back == "disk") if read_back else None
                copied, digests = _copy_large(src_fd, dst_fd, algorithms, first, writeback, back)
                if back is not None:
                    st = os.fstat(dst_fd)
                    checked = ReadBack(back.digests(), back.from_disk,
                                       (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
            if fsync:
                os.fsync(dst_fd)
            return copied, digests, checked
        finally:
            os.close(dst_fd)
    finally:
        os.close(src_fd)


POOL = QUEUE_DEPTH + 2      # chunk buffers of a large copy in flight
READ_BACK_SPAN = 32 * CHUNK  # most bytes flushed and read back at once


def _copy_large(src_fd: int, dst_fd: int, algorithms: list[str],
                first: Callable[[bytes], object] | None, writeback: bool,
                back: "_ReadBackWorker | None") -> tuple[int, dict[str, str]]:
    """Read ``src_fd`` into a ring of reused buffers; one thread per digest and one writing
    each buffer, the read-back (if any) following the writer.

    Reused buffers rather than a new ``bytes`` per chunk: fresh 1 MiB allocations cost page
    faults and zeroing in every thread, about as much as the copy itself.
    """
    hashers = new_hashers(algorithms)
    position = [0]

    def write(view: memoryview) -> None:
        _copy_range(src_fd, dst_fd, position[0], view)
        if writeback:
            _start_writeback(dst_fd, position[0], len(view))
        if back is not None:
            back.ranges.put((position[0], len(view)))
        position[0] += len(view)

    workers = [_Worker(h.update, report=True) for h in hashers.values()]
    workers.append(_Worker(write, report=True))
    if back is not None:
        back.start()
    for worker in workers:
        worker.start()
    buffers = [bytearray(CHUNK) for _ in range(POOL)]
    size = index = 0
    try:
        while True:
            buffer = buffers[index % POOL]
            if index >= POOL:
                for worker in workers:      # every worker is done with this buffer's chunk
                    worker.done.get()
            count = os.readv(src_fd, [buffer])
            if count == 0:
                break
            view = memoryview(buffer)[:count]
            if index == 0 and first is not None:
                first(bytes(view))
            for worker in workers:
                if worker.error is not None:
                    raise worker.error
                worker.chunks.put(view)
            size += count
            index += 1
    finally:
        for worker in workers:
            worker.chunks.put(_STOP)
        for worker in workers:
            worker.join()
        if back is not None:
            back.ranges.put(_STOP)
            back.join()
    for worker in workers:
        if worker.error is not None:
            raise worker.error
    if back is not None and back.error is not None:
        raise back.error
    return size, {name: h.hexdigest() for name, h in hashers.items()}


def _copy_range(src_fd: int, dst_fd: int, offset: int, view: memoryview) -> None:
    """Append the source's bytes at ``offset`` (``view`` holds them as read) to ``dst_fd``.

    On Linux the kernel copies them from the source's page cache (sendfile): writing 1 GiB
    from a user-space buffer now and then takes four times as long on virtual machines, a
    kernel copy does not. Should the source change meanwhile, the read-back digest differs
    from the digest of the bytes read, and the copy is refused.
    """
    if not _KERNEL_COPY:
        _write_all(dst_fd, view)
        return
    start, end = offset, offset + len(view)
    while start < end:
        sent = os.sendfile(dst_fd, src_fd, start, end - start)
        if sent == 0:
            raise OSError(f"the source ended at byte {start} while {end} were read")
        start += sent


_KERNEL_COPY = sys.platform.startswith("linux") and hasattr(os, "sendfile")


class _ReadBackWorker(threading.Thread):
    """Reads back the ranges of a file the writer reports as written, and digests them."""

    def __init__(self, path: str | os.PathLike[str], algorithms: list[str],
                 from_disk: bool) -> None:
        super().__init__(daemon=True)
        self.path, self.from_disk = path, from_disk
        self.hashers = new_hashers(algorithms)
        self.ranges: queue.SimpleQueue = queue.SimpleQueue()
        self.error: BaseException | None = None

    def run(self) -> None:
        buffer = bytearray(CHUNK)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            stopped = False
            while not stopped:
                item = self.ranges.get()
                if item is _STOP:
                    break
                offset, length = item
                # when behind, take every range already written as one span: the disk
                # flushes one large request instead of many small ones
                while length < READ_BACK_SPAN and not self.ranges.empty():
                    following = self.ranges.get()
                    if following is _STOP:
                        stopped = True
                        break
                    length += following[1]
                if self.error is None:
                    try:
                        self._check(fd, buffer, offset, length)
                    except BaseException as exc:  # re-raised by the copying thread
                        self.error = exc
        finally:
            os.close(fd)

    def _check(self, fd: int, buffer: bytearray, offset: int, length: int) -> None:
        if self.from_disk:
            # on the device, then out of memory: the reads below have to go to the disk
            if _sync_file_range()(fd, offset, length, 1 | 2 | 4) != 0:
                raise OSError(ctypes.get_errno(), f"{self.path}: sync_file_range failed")
            os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
        end = offset + length
        while offset < end:
            view = memoryview(buffer)[:min(CHUNK, end - offset)]
            got = os.preadv(fd, [view], offset)
            if got != len(view):
                raise OSError(f"{self.path}: read back {got} of {len(view)} bytes at {offset}")
            for hasher in self.hashers.values():
                hasher.update(view)
            offset += got

    def digests(self) -> dict[str, str]:
        return {name: h.hexdigest() for name, h in self.hashers.items()}


def _can_read_from_disk() -> bool:
    return _sync_file_range() is not None and hasattr(os, "posix_fadvise")


def _fd_chunks(fd: int) -> Iterator[bytes]:
    while block := os.read(fd, CHUNK):
        yield block


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
