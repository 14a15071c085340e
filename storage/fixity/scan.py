"""Reading stored files back through every recorded digest algorithm, in parallel.

Each file is read once through all its algorithms (:mod:`storage.fixity.hashing`). Many
files are spread over worker *processes*, one per core: per-file Python work does not
release the GIL, so threads would serialise on it. Small jobs run in-process, where starting
workers would cost more than it saves. Files that :mod:`storage.fixity.readahead` read
while the audit was starting are taken from it when it read the very same file.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, NamedTuple, Self

from policies.config import Settings
from policies.errors import DanganError
from policies.loader import LocationSpec
from storage.fixity import readahead
from storage.fixity.hashing import (
    CHUNK,
    DEPTH,
    forget_cached_pages,
    hash_descriptor,
    hash_stream,
)
from storage.locations import Location, open_location

PIPELINE_MIN = 4 * CHUNK      # files at least this large are read and hashed in parallel
BATCH_BYTES = 64 * CHUNK      # small files are handed to workers in batches up to this size
INLINE_MAX_BYTES = 96 * CHUNK  # jobs smaller than this (and INLINE_MAX_FILES) run in-process
INLINE_MAX_FILES = 1500
TICK = 0.5                     # seconds between progress reports while workers read
IN_FLIGHT = 4                  # batches handed to each worker ahead of its results

ProgressFn = Callable[[int], None]


class FileTask(NamedTuple):
    """One stored file to read: bag path, size as listed, algorithms to compute.

    A named tuple: tens of thousands are made and sent to workers per AIP.
    """

    path: str
    size: int
    algorithms: tuple[str, ...]


@dataclass
class FileResult:
    """What reading one file gave: byte count and digests, or the error that stopped it."""

    path: str
    size: int
    digests: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    def to_row(self) -> list[Any]:
        """Compact form kept in checkpoints."""
        return [self.path, self.size, self.digests, self.error]

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> FileResult:
        """Inverse of :meth:`to_row`."""
        return cls(str(row[0]), int(row[1]), dict(row[2] or {}), row[3])


def read_file(location: Location, uuid: str, task: FileTask, *, cold: bool,
              progress: ProgressFn | None = None) -> FileResult:
    """Read one stored file through its algorithms; errors become the result's ``error``.

    A small file of a local location is read through its descriptor, a larger one (or any
    other) through a stream."""
    try:
        if task.size < PIPELINE_MIN:
            fd = location.open_descriptor(uuid, task.path)
            if fd is not None:
                try:
                    if cold and hasattr(os, "posix_fadvise"):
                        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    size, digests = hash_descriptor(fd, task.algorithms, progress)
                finally:
                    os.close(fd)
                return FileResult(task.path, size, digests)
        with location.open(uuid, task.path) as stream:
            if cold:
                forget_cached_pages(stream)
            size, digests = hash_stream(stream, task.algorithms,
                                        large=task.size >= PIPELINE_MIN, progress=progress)
    except (DanganError, OSError) as exc:
        return FileResult(task.path, -1, {}, f"{type(exc).__name__}: {exc}")
    return FileResult(task.path, size, digests)


# -- worker processes ----------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(counter: Any, settings: Settings | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the parent decides what an interrupt means
    _WORKER["counter"] = counter
    _WORKER["settings"] = settings
    _WORKER["locations"] = {}


COUNT_EVERY = 8 * CHUNK        # bytes a worker reads before adding them to the shared count


def _count(amount: int) -> None:
    """Progress of a worker: added to the count shared with the parent every ``COUNT_EVERY``
    bytes (a lock shared by processes, taken for every small file, costs more than reading
    it) and at the end of each batch."""
    pending = _WORKER.get("pending", 0) + amount
    if pending >= COUNT_EVERY:
        _flush_count(pending)
        pending = 0
    _WORKER["pending"] = pending


def _flush_count(amount: int | None = None) -> None:
    amount = _WORKER.get("pending", 0) if amount is None else amount
    _WORKER["pending"] = 0
    if amount:
        counter = _WORKER["counter"]
        with counter.get_lock():
            counter.value += amount


def worker_location(spec: LocationSpec) -> Location:
    """In a worker process: the location of ``spec``, opened once per worker."""
    locations = _WORKER["locations"]
    if spec not in locations:
        locations[spec] = open_location(spec, fsync=False, settings=_WORKER["settings"])
    return locations[spec]


def _worker_batch(spec: LocationSpec, uuid: str, tasks: list[FileTask],
                  cold: bool) -> list[list[Any]]:
    location = worker_location(spec)
    # plain lists travel back to the parent faster than dataclass instances
    try:
        return [read_file(location, uuid, task, cold=cold, progress=_count).to_row()
                for task in tasks]
    finally:
        _flush_count()


def batches(tasks: Sequence[FileTask], max_files: int) -> list[list[FileTask]]:
    """Group tasks for workers: each large file alone, small ones up to a count and size.

    Largest first, so that the last file to finish is a small one (workers end together).
    """
    # by path, then (stable) by size, largest first: C key functions, no call per task
    ordered = sorted(sorted(tasks, key=itemgetter(0)), key=itemgetter(1), reverse=True)
    groups: list[list[FileTask]] = []
    current: list[FileTask] = []
    current_bytes = 0
    for task in ordered:
        if task.size >= PIPELINE_MIN:
            groups.append([task])
            continue
        if current and (len(current) >= max_files or current_bytes + task.size > BATCH_BYTES):
            groups.append(current)
            current, current_bytes = [], 0
        current.append(task)
        current_bytes += task.size
    if current:
        groups.append(current)
    return groups


#: names of the audit's own reading threads: they only hash open files, holding no lock that
#: a forked worker would need (no logging, no imports, no catalogue connection)
OWN_THREADS = ("fixity-read",)


def _foreign_threads() -> list[threading.Thread]:
    """Threads of this process other than the main one and the audit's own."""
    main = threading.main_thread()
    return [t for t in threading.enumerate()
            if t is not main and not t.name.startswith(OWN_THREADS)]


class Scanner:
    """Reads the files of stored copies, in-process or in worker processes.

    Arguments:
        workers: processes for large jobs (one per core is right: hashing is CPU-bound).
        cold: drop cached pages of local files before reading them, so bytes come from disk.
        batch_files: most files per batch; also the checkpoint granularity.
        settings: the home's settings (workers open locations with them).
    """

    def __init__(self, workers: int = 2, *, cold: bool = True, batch_files: int = 256,
                 settings: Settings | None = None) -> None:
        self.workers = max(1, workers)
        self.settings = settings
        self.cold = cold
        self.batch_files = max(1, batch_files)
        self._pool: ProcessPoolExecutor | None = None
        self._counter: Any = None
        self._inline_bytes = 0

    @property
    def bytes_read(self) -> int:
        """Bytes read so far by this scanner (all copies)."""
        shared = self._counter.value if self._counter is not None else 0
        return shared + self._inline_bytes

    def _count_inline(self, amount: int) -> None:
        self._inline_bytes += amount

    def scan(self, spec: LocationSpec, location: Location, uuid: str,
             tasks: Sequence[FileTask]) -> Iterator[list[FileResult]]:
        """Yield the results of ``tasks`` batch by batch, as batches finish (and an empty
        list now and then while a long file is still being read, for progress displays).

        Arguments:
            spec: the location's policy entry (workers open their own connection from it).
            location: the opened location (used for in-process reads).
            uuid: the AIP.
            tasks: the files to read.
        """
        claimed = self._claimed(spec, uuid, tasks)
        if claimed:
            yield from self._scan_in_thread(
                location, uuid, [[t] for t in tasks if t.path in claimed],
                lambda group: [self._take_read_ahead(location, uuid, t, claimed[t.path])
                               for t in group])
            tasks = [t for t in tasks if t.path not in claimed]
        groups = batches(tasks, self.batch_files)
        how = self._how(tasks)
        if how == "inline":
            for group in groups:
                yield self._read_group(location, uuid, group)
        elif how == "thread":
            yield from self._scan_in_thread(location, uuid, groups)
        else:
            yield from self._scan_in_workers(spec, uuid, groups)

    def prepare(self, spec: LocationSpec, uuid: str, tasks: Sequence[FileTask]) -> bool:
        """Whether :meth:`scan` of these tasks will use worker processes; if so they are
        started now (forked before the caller starts threads of its own)."""
        claimed = self._claimed(spec, uuid, tasks)
        if self._how([t for t in tasks if t.path not in claimed]) != "workers":
            return False
        import gc

        # the workers are forked now; objects of this process frozen for the fork are never
        # traversed by the children's collector, so their pages stay shared (not copied)
        gc.freeze()
        try:
            self._ensure_pool().submit(int).result()    # forks every worker (fork context)
        finally:
            gc.unfreeze()
        return True

    def submit(self, func: Callable[..., Any], *args: Any) -> Future:
        """Run ``func(*args)`` in a worker process (module-level function; see
        :func:`worker_location` for the location of a spec there)."""
        return self._ensure_pool().submit(func, *args)

    @staticmethod
    def _claimed(spec: LocationSpec, uuid: str,
                 tasks: Sequence[FileTask]) -> dict[str, readahead.Entry]:
        """The tasks' files that the read-ahead of this process was asked to read."""
        ahead = readahead.active()
        if ahead is None:
            return {}
        return {t.path: e for t in tasks
                if (e := ahead.lookup(spec.name, uuid, t.path)) is not None}

    def _how(self, tasks: Sequence[FileTask]) -> str:
        """Where tasks are read: ``inline`` (this thread), ``thread`` or ``workers``."""
        total = sum(t.size for t in tasks)
        if self.workers == 1 or (total < INLINE_MAX_BYTES and len(tasks) < INLINE_MAX_FILES):
            return "inline"
        if total - max(t.size for t in tasks) < INLINE_MAX_BYTES and len(tasks) < INLINE_MAX_FILES:
            # one file holds nearly all the bytes: its digest is one stream that no second
            # core can share, so starting workers would only add their start-up
            return "thread"
        return "workers"

    def _read_group(self, location: Location, uuid: str,
                    group: list[FileTask]) -> list[FileResult]:
        return [read_file(location, uuid, t, cold=self.cold, progress=self._count_inline)
                for t in group]

    def _take_read_ahead(self, location: Location, uuid: str, task: FileTask,
                         entry: readahead.Entry) -> FileResult:
        """One file that the read-ahead was asked to read: its digests if it read this very
        file with every algorithm wanted, else the file read here."""
        try:
            with location.open(uuid, task.path) as stream:
                identity = readahead.file_identity(os.fstat(stream.fileno()))
                entry.done.wait()
                if entry.usable_for(identity, task.algorithms):
                    self._count_inline(entry.size)
                    return FileResult(task.path, entry.size,
                                      {name: entry.digests[name] for name in task.algorithms})
                if self.cold:
                    forget_cached_pages(stream)
                size, digests = hash_stream(stream, task.algorithms,
                                            large=task.size >= PIPELINE_MIN,
                                            progress=self._count_inline)
        except (DanganError, OSError) as exc:
            return FileResult(task.path, -1, {}, f"{type(exc).__name__}: {exc}")
        return FileResult(task.path, size, digests)

    def _scan_in_thread(self, location: Location, uuid: str, groups: list[list[FileTask]],
                        reader: Callable[[list[FileTask]], list[FileResult]] | None = None,
                        ) -> Iterator[list[FileResult]]:
        """Read in this process, on a daemon thread (hashing releases the GIL; an interrupted
        audit does not wait for it), with a tick for progress displays while a file is read."""
        read_group = reader or (lambda group: self._read_group(location, uuid, group))
        for group in groups:
            outcome: queue.Queue = queue.Queue(maxsize=1)

            def read(group: list[FileTask] = group) -> None:
                try:
                    outcome.put((read_group(group), None))
                except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
                    outcome.put((None, exc))

            threading.Thread(target=read, name="fixity-read", daemon=True).start()
            while True:
                try:
                    results, error = outcome.get(timeout=TICK)
                    break
                except queue.Empty:
                    yield []
            if error is not None:
                raise error
            yield results

    def _scan_in_workers(self, spec: LocationSpec, uuid: str,
                         groups: list[list[FileTask]]) -> Iterator[list[FileResult]]:
        pool = self._ensure_pool()
        waiting = iter(groups)
        running: set[Future] = set()
        try:
            while True:
                while len(running) < IN_FLIGHT * self.workers:
                    group = next(waiting, None)
                    if group is None:
                        break
                    running.add(pool.submit(_worker_batch, spec, uuid, group, self.cold))
                if not running:
                    return
                done, running = wait(running, timeout=TICK, return_when=FIRST_COMPLETED)
                # the batches that finished together come as one: each is checkpointed by the
                # caller, so when the caller falls behind it writes fewer, larger checkpoints
                # instead of leaving the workers without work
                yield [FileResult.from_row(row) for future in done for row in future.result()]
        finally:
            for future in running:
                future.cancel()

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # fork is cheapest; with other threads running (a web server, a test server) a
            # fork could copy a lock some thread holds, so workers come from a forkserver.
            # The audit's reading threads (see OWN_THREADS) take no lock a worker uses.
            ahead = readahead.active()
            if ahead is not None:
                ahead.planned.wait()        # its imports are done once it has planned
            if not _foreign_threads():
                context = multiprocessing.get_context("fork")
            else:
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload(["storage.fixity.scan"])
            self._counter = context.Value("q", 0)
            self._pool = ProcessPoolExecutor(self.workers, mp_context=context,
                                             initializer=_init_worker,
                                             initargs=(self._counter, self.settings))
        return self._pool

    def close(self) -> None:
        """Stop the worker processes (if any were started)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
