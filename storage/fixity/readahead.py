"""Reading an AIP's large stored files while the audit is still starting up.

A full audit of one AIP spends its first few tenths of a second importing the catalogue's
ORM and planning the run, on one core, before the first byte is read; on an AIP that is one
large file the hashing then keeps a core busy for as long as the file takes. ``dangan audit
--aip`` starts a :class:`ReadAhead` first: from the SQLite catalogue, read with the standard
library's ``sqlite3``, it finds the file that holds nearly all the AIP's bytes (see
``REST_MAX_BYTES``) and hashes each copy of it at a filesystem location on a background
thread (hashing releases the GIL) while the main thread goes on loading and planning. When the audit reaches such a file it opens the stored
file as always and takes the read-ahead's digests only if it is the very file that was read
(same device, inode, size, modification and change time) and every algorithm the check wants
was computed; otherwise it reads the file itself. Nothing is decided here: the audit
compares these digests with the catalogue and the manifests exactly as its own.

Not used (the audit reads everything itself) for a catalogue other than a SQLite file at the
current schema, for S3 locations, while another audit holds the home's lock, or with
``DANGAN_AUDIT_READ_AHEAD=false``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from policies.config import Settings

#: the file read ahead is at least this large (a smaller one costs less than the wait)
MIN_BYTES = 4 << 20
#: and the AIP's other files together are smaller than this (the scanner's INLINE_MAX_BYTES):
#: where one file holds nearly all the bytes, its digest is one stream that the scanner
#: reads on one thread anyway. Bytes spread over several files are read by the scanner's
#: worker processes in parallel, faster than threads of this process (which share its
#: page-fault lock).
REST_MAX_BYTES = 96 << 20
#: bytes hashed per call: the GIL is released for each call, and taken back after it only
#: once the busy main thread lets go of it (up to 5 ms), so the calls are long
STEP = 64 << 20


def file_identity(info: os.stat_result) -> tuple[int, int, int, int, int]:
    """What tells one stored file from any other, or from itself after a change."""
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


@dataclass
class Entry:
    """One file read ahead: its identity when read, the byte count and digests (or the error
    that stopped the read; the audit then reads the file itself)."""

    location: str
    uuid: str
    path: str
    algorithms: tuple[str, ...]
    done: threading.Event = field(default_factory=threading.Event)
    identity: tuple[int, ...] | None = None
    size: int = -1
    digests: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    def usable_for(self, identity: tuple[int, ...], algorithms: tuple[str, ...]) -> bool:
        """Whether the audit may take these digests for a file it has opened."""
        return (self.error is None and self.identity == identity
                and set(algorithms) <= set(self.digests))


class ReadAhead:
    """Background reading of one AIP's large files (see the module's doc).

    Arguments:
        settings: the home's settings.
        aip: the AIP's UUID or a unique prefix, as given to ``dangan audit --aip``.
        location: only copies at this location.
        threads: reading threads (one: the main thread keeps the other core busy).
    """

    def __init__(self, settings: Settings, aip: str, location: str | None = None, *,
                 threads: int = 1) -> None:
        self.settings = settings
        self.aip = aip
        self.location_name = location
        self.threads = max(1, threads)
        self.cold = bool(settings.get("audit", "cold_read"))
        self.started = time.monotonic()
        self.planned = threading.Event()
        self.entries: dict[tuple[str, str, str], Entry] = {}
        self.taken = 0
        self.skipped_reason: str | None = None
        self._stop = threading.Event()
        self._queue: list[Entry] = []
        self._locations: dict[str, Any] = {}
        self._lock = threading.Lock()

    # -- starting ----------------------------------------------------------------------------
    def start(self) -> ReadAhead:
        """Begin: plan in a background thread, then read on ``threads`` threads."""
        threading.Thread(target=self._run, name="fixity-read-ahead", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop reading after the files in progress (their results stay usable)."""
        self._stop.set()

    def _run(self) -> None:
        try:
            self._plan()
        except Exception as exc:  # noqa: BLE001 - reading ahead is an optimisation only
            self.skipped_reason = f"{type(exc).__name__}: {exc}"
            self.entries.clear()
        finally:
            self.planned.set()
        if not self._queue:
            return
        readers = [threading.Thread(target=self._read_loop, name="fixity-read-ahead",
                                    daemon=True) for _ in range(min(self.threads,
                                                                    len(self._queue)))]
        for reader in readers:
            reader.start()

    def _plan(self) -> None:
        reason = self._why_not()
        if reason:
            self.skipped_reason = reason
            return
        import sqlite3

        from storage.catalogue import reading

        path = reading.sqlite_path(self.settings.get("catalogue", "url"))
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            version = connection.execute("SELECT version_num FROM alembic_version").fetchone()
            if version is None or version[0] != reading.head_revision():
                self.skipped_reason = "the catalogue's schema is to be migrated first"
                return
            uuid = self._uuid(connection)
            if uuid is None:
                self.skipped_reason = f"no single AIP {self.aip}"
                return
            # the copies an audit of the AIP checks (storage.fixity.schedule: stored AIPs)
            copies = [name for (name,) in connection.execute(
                "SELECT c.location FROM copies c JOIN aips a ON a.uuid = c.aip_uuid "
                "WHERE c.aip_uuid = ? AND a.status = 'UPLOADED' ORDER BY c.location", (uuid,))
                if self.location_name in (None, name)]
            total = connection.execute("SELECT COALESCE(SUM(size), 0) FROM files "
                                       "WHERE aip_uuid = ?", (uuid,)).fetchone()[0]
            files = connection.execute(
                "SELECT path, size, digests FROM files WHERE aip_uuid = ? AND size >= ? "
                "ORDER BY size DESC, path LIMIT 1", (uuid, MIN_BYTES)).fetchall()
        finally:
            connection.close()
        if not files:
            self.skipped_reason = "no large file"
            return
        if total - files[0][1] >= REST_MAX_BYTES:
            self.skipped_reason = ("the bytes are spread over several files: the audit's "
                                   "worker processes read them in parallel")
            return
        available = hashlib.algorithms_available
        wanted = []
        for file_path, _size, digests in files:
            recorded = json.loads(digests) if isinstance(digests, str) else dict(digests or {})
            algorithms = tuple(sorted(set(recorded) & available or {"sha256"},
                                      key=lambda n: (n != "sha256", n)))
            wanted.append((file_path, algorithms))
        from policies import load_storage_policy
        from storage.fixity import hashing
        from storage.locations import open_location

        hashing.hash_stream         # noqa: B018 - loaded now: after planning, no imports
        storage = load_storage_policy(self.settings)
        for name in copies:
            spec = storage.location(name)
            if not spec.url.startswith("file:"):
                continue
            self._locations[name] = open_location(spec, settings=self.settings)
            for file_path, algorithms in wanted:
                entry = Entry(name, uuid, file_path, algorithms)
                self.entries[(name, uuid, file_path)] = entry
                self._queue.append(entry)

    def _why_not(self) -> str | None:
        from storage.catalogue import reading

        if os.environ.get("DANGAN_AUDIT_READ_AHEAD", "true").lower() in ("0", "false", "no"):
            return "switched off (DANGAN_AUDIT_READ_AHEAD)"
        path = reading.sqlite_path(self.settings.get("catalogue", "url"))
        if path is None or not path.is_file():
            return "the catalogue is not a SQLite file"
        lock = self.settings.home / "locks" / "audit.lock"
        if lock.exists():
            with open(lock, "a+") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return "another audit is running"
                fcntl.flock(handle, fcntl.LOCK_UN)
        return None

    def _uuid(self, connection: Any) -> str | None:
        row = connection.execute("SELECT uuid FROM aips WHERE uuid = ?", (self.aip,)).fetchone()
        if row is not None:
            return row[0]
        pattern = self.aip.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = connection.execute("SELECT uuid FROM aips WHERE uuid LIKE ? ESCAPE '\\'",
                                  (pattern,)).fetchall()
        return rows[0][0] if len(rows) == 1 else None

    # -- reading -----------------------------------------------------------------------------
    def _next(self) -> Entry | None:
        with self._lock:
            return self._queue.pop(0) if self._queue and not self._stop.is_set() else None

    def _read_loop(self) -> None:
        # imports nothing: a worker process may be forked while this thread runs
        from storage.fixity.hashing import forget_cached_pages, hash_stream

        while (entry := self._next()) is not None:
            try:
                with self._locations[entry.location].open(entry.uuid, entry.path) as stream:
                    identity = file_identity(os.fstat(stream.fileno()))
                    if self.cold:
                        forget_cached_pages(stream)
                    entry.size, entry.digests = hash_stream(stream, entry.algorithms,
                                                            large=True, step=STEP)
                    entry.identity = identity
            except Exception as exc:  # noqa: BLE001 - the audit reads the file itself
                entry.error = f"{type(exc).__name__}: {exc}"
            finally:
                entry.done.set()
        # whatever is left unread when stopped is read by the audit itself
        with self._lock:
            for entry in self._queue:
                entry.error = "not read ahead"
                entry.done.set()
            self._queue.clear()

    # -- what the audit asks -----------------------------------------------------------------
    def lookup(self, location: str, uuid: str, path: str) -> Entry | None:
        """The entry of one stored file, once planning is done (None: not read ahead)."""
        self.planned.wait()
        return self.entries.get((location, uuid, path))


_ACTIVE: ReadAhead | None = None


def start(settings: Settings, aip: str, location: str | None = None) -> ReadAhead:
    """Start reading one AIP's large files ahead and make it the one the scanner consults."""
    global _ACTIVE
    _ACTIVE = ReadAhead(settings, aip, location, threads=1).start()
    return _ACTIVE


def active() -> ReadAhead | None:
    """The read-ahead of this process's audit, if one was started."""
    return _ACTIVE


def finish() -> None:
    """Stop and forget the read-ahead (at the end of the audit command)."""
    global _ACTIVE
    if _ACTIVE is not None:
        _ACTIVE.stop()
    _ACTIVE = None
