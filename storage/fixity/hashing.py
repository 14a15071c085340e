"""Hashing one stored file: one read through every recorded digest algorithm.

The file is read once, chunk by chunk into reused buffers (one of ``CHUNK`` bytes per reading
thread; ``DEPTH`` of them for a large file hashed with several algorithms, where one thread
per algorithm hashes the same buffers so the slowest algorithm sets the pace instead of the
sum of all); a regular local file is hashed through its mapping instead. Memory is bounded
whatever the file size. This module imports no process machinery, so that reading can start
before the rest of an audit has loaded (:mod:`storage.fixity.readahead`).
"""

from __future__ import annotations

import mmap
import os
import queue
import stat
import threading
from collections.abc import Callable, Sequence
from typing import Any, BinaryIO

from storage.aip import new_hashers

CHUNK = 1 << 20
DEPTH = 4                     # buffers in flight per large file

ProgressFn = Callable[[int], None]


def hash_stream(stream: BinaryIO, algorithms: Sequence[str], *, large: bool,
                progress: ProgressFn | None = None, step: int = CHUNK
                ) -> tuple[int, dict[str, str]]:
    """Read a stream to its end once, digesting it with every algorithm.

    One algorithm: read and hash in this thread, into one reused buffer (handing chunks to
    another thread costs more than it saves: with SHA-NI, hashing a chunk takes only a few
    times longer than copying it from the page cache, and the other core receives it cold).
    Several algorithms on a large file: this thread reads and hashes the first, one thread
    per further algorithm hashes the same buffers, so the slowest algorithm sets the pace
    instead of their sum.

    Arguments:
        stream: the bytes.
        algorithms: hashlib names.
        large: the file is large enough for threads to pay off (a few MiB).
        progress: called with each chunk's byte count.
        step: bytes hashed per call on a mapped file. Each call releases the GIL; a thread
            hashing beside a busy main thread waits up to the interpreter's switch interval
            (5 ms) to get it back after every call, so such a thread takes long steps.

    Returns:
        (bytes read, {algorithm: hex digest}).
    """
    hashers = new_hashers(algorithms)
    mapped = _map(stream) if large else None
    if mapped is not None:
        with mapped:
            size = _hash_mapped(mapped, list(hashers.values()), progress, step)
    elif large and len(hashers) > 1:
        size = _pipelined(stream, list(hashers.values()), progress)
    else:
        size = _inline(stream, list(hashers.values()), progress)
    return size, {name: h.hexdigest() for name, h in hashers.items()}


_LOCAL = threading.local()


def _map(stream: BinaryIO) -> mmap.mmap | None:
    """The stream's file mapped read-only, when it is a regular file on this machine.

    Hashing a mapped file reads the page cache directly, with no copy into a buffer: 20%
    faster than ``readinto`` for a large file, from the disk or from the cache alike (measured
    on 1 GiB: 0.92 s against 1.16 s with a cold cache, 0.89 against 1.08 warm). A file
    truncated by another process while it is being read stops its worker with SIGBUS; the
    audit then records the copy check as an error, never as a pass.
    """
    try:
        fd = stream.fileno()
        info = os.fstat(fd)
    except (AttributeError, OSError, ValueError):
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_size == 0:
        return None
    mapped = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    mapped.madvise(mmap.MADV_SEQUENTIAL)
    return mapped


def _hash_mapped(mapped: mmap.mmap, hashers: list[Any], progress: ProgressFn | None,
                 step: int = CHUNK) -> int:
    """Hash a mapped file in ``step`` bytes at a time: the first algorithm in this thread,
    each other in a thread of its own over the same pages (the slowest sets the pace)."""
    size = len(mapped)
    view = memoryview(mapped)
    errors: list[BaseException] = []

    def hash_all(hasher: Any) -> None:
        try:
            for start in range(0, size, step):
                hasher.update(view[start:start + step])
        except BaseException as exc:  # noqa: BLE001 - re-raised in this thread
            errors.append(exc)

    threads = [threading.Thread(target=hash_all, args=(h,), daemon=True) for h in hashers[1:]]
    for thread in threads:
        thread.start()
    try:
        for start in range(0, size, step):
            hashers[0].update(view[start:start + step])
            if progress:
                progress(min(step, size - start))
    finally:
        for thread in threads:
            thread.join()
        view.release()
    if errors:
        raise errors[0]
    return size


def _inline(stream: BinaryIO, hashers: list[Any], progress: ProgressFn | None) -> int:
    """Read and hash in this thread, into one reused buffer (no allocation per file)."""
    readinto = getattr(stream, "readinto", None)
    if readinto is None:
        size = 0
        while chunk := stream.read(CHUNK):
            size += len(chunk)
            for hasher in hashers:
                hasher.update(chunk)
            if progress:
                progress(len(chunk))
        return size
    buffer = getattr(_LOCAL, "buffer", None)
    if buffer is None:
        buffer = _LOCAL.buffer = memoryview(bytearray(CHUNK))
    size = 0
    while count := readinto(buffer):
        size += count
        view = buffer[:count]
        for hasher in hashers:
            hasher.update(view)
        if progress:
            progress(count)
    return size


class _BufferPool:
    """Reusable read buffers; a buffer returns to the pool when every user is done with it."""

    def __init__(self, count: int, users: int) -> None:
        self.free: queue.Queue = queue.Queue()
        for _ in range(count):
            self.free.put(bytearray(CHUNK))
        self.users = users
        self.pending: dict[int, int] = {}
        self.lock = threading.Lock()

    def take(self) -> bytearray:
        """A free buffer (waits while all are in use: this bounds memory)."""
        buffer = self.free.get()
        with self.lock:
            self.pending[id(buffer)] = self.users
        return buffer

    def release(self, buffer: bytearray) -> None:
        """One user is done with the buffer."""
        with self.lock:
            self.pending[id(buffer)] -= 1
            done = self.pending[id(buffer)] == 0
        if done:
            self.free.put(buffer)


_STOP = None


def _pipelined(stream: BinaryIO, hashers: list[Any], progress: ProgressFn | None) -> int:
    """Read into pooled buffers and hash the first algorithm in this thread; hash each other
    algorithm in a thread of its own."""
    first, others = hashers[0], hashers[1:]
    pool = _BufferPool(DEPTH, len(hashers))
    queues: list[queue.Queue] = [queue.Queue() for _ in others]
    errors: list[BaseException] = []

    def hash_loop(hasher: Any, chunks: queue.Queue) -> None:
        while (item := chunks.get()) is not _STOP:
            buffer, length = item
            try:
                if not errors:
                    hasher.update(memoryview(buffer)[:length])
            except BaseException as exc:  # noqa: BLE001 - re-raised in the reading thread
                errors.append(exc)
            finally:
                pool.release(buffer)

    threads = [threading.Thread(target=hash_loop, args=(h, q), daemon=True)
               for h, q in zip(others, queues)]
    for thread in threads:
        thread.start()
    size = 0
    readinto = getattr(stream, "readinto", None)
    try:
        while not errors:
            buffer = pool.take()
            length = _fill(stream, readinto, buffer)
            if not length:
                pool.pending.pop(id(buffer), None)
                break
            size += length
            for chunks in queues:
                chunks.put((buffer, length))
            first.update(memoryview(buffer)[:length])
            pool.release(buffer)
            if progress:
                progress(length)
    finally:
        for chunks in queues:
            chunks.put(_STOP)
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    return size


def _fill(stream: BinaryIO, readinto: Callable[[Any], int] | None, buffer: bytearray) -> int:
    """Read up to a buffer's length (fewer only at the end of the stream)."""
    if readinto is None:
        data = stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
    view = memoryview(buffer)
    filled = 0
    while filled < len(buffer):
        count = readinto(view[filled:])
        if not count:
            break
        filled += count
    return filled


def forget_cached_pages(stream: BinaryIO) -> None:
    """Ask the kernel to drop a local file's cached pages, so the audit reads the disk."""
    fileno = getattr(stream, "fileno", None)
    if fileno is None or not hasattr(os, "posix_fadvise"):
        return
    try:
        os.posix_fadvise(fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    except (OSError, ValueError, AttributeError):
        pass


def hash_descriptor(fd: int, algorithms: Sequence[str],
                    progress: ProgressFn | None = None) -> tuple[int, dict[str, str]]:
    """Read an open file descriptor to its end, digesting it with every algorithm.

    For small files: without a stream object, a file of a few KiB costs half the time of
    ``open`` and a buffered read (measured: 8 µs against 17 µs for 4 KiB from the page cache).
    """
    hashers = list(new_hashers(algorithms).items())
    size = 0
    while chunk := os.read(fd, CHUNK):
        size += len(chunk)
        for _name, hasher in hashers:
            hasher.update(chunk)
        if progress:
            progress(len(chunk))
    return size, {name: hasher.hexdigest() for name, hasher in hashers}

