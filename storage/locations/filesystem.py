"""A storage location on a local or mounted filesystem (``file:///path``).

Layout: ``<root>/<uuid>/<bag files>`` for published AIPs and ``<root>/.pending/<uuid>/`` while
one is being written. Publishing is one ``rename`` of the verified folder, so a reader (or a
crash) sees either no AIP or the complete one. Read-back verification hashes every file
again, in parallel across files; with ``fsync`` (the default) the data is flushed first and
dropped from the page cache, so the verification reads what is really on the disk.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from policies.errors import ObjectNotFound, StorageError
from storage.aip import ReadBack, copy_and_hash, copy_hash_read_back, fsync_dir, hash_file, map_files
from storage.locations.base import (
    CopyReport, ExpectedFile, Leftover, LimitedReader, Location, Mismatch, ObjectInfo,
    ProgressFn, crash_point, raise_first, verify_stored_bag,
)
from storage.locations import FILE_MODE, private_dir, restrict_tree

PENDING = ".pending"
ADMIN = ".dangan"   # administrative objects (audit-log anchor), never an AIP


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class FilesystemLocation(Location):
    """AIPs as folders under ``root``.

    Arguments:
        name: the location's name in the storage policy.
        root: the folder (created if missing).
        fsync: flush data before verifying and publishing (off only for benchmarks of
            like-for-like work and for tests).
        workers: files verified in parallel.
    """

    def __init__(self, name: str, root: Path, *, fsync: bool = True, workers: int = 2) -> None:
        self.name, self.root, self.fsync, self.workers = name, Path(root), fsync, workers
        self.url = self.root.as_uri()
        try:
            private_dir(self.root / PENDING)
        except OSError as exc:
            raise StorageError(f"location {name}: cannot create {self.root}: {exc.strerror}") from exc

    # -- writing ---------------------------------------------------------------------------
    def put_aip(self, uuid: str, source: Path, expected: Mapping[str, ExpectedFile], *,
                move: bool = False, progress: ProgressFn | None = None) -> CopyReport:
        report = CopyReport(self.name, self.url_for(uuid), started=_now())
        final = self._aip_dir(uuid)
        if final.is_dir():
            payload = {p: e for p, e in expected.items() if p.startswith("data/objects/")}
            raise_first(verify_stored_bag(self, uuid, payload), uuid)
            report.reused = True
        else:
            pending = self.root / PENDING / uuid
            if pending.exists():
                shutil.rmtree(pending)
            read_back = self._write(source, pending, expected, move)
            restrict_tree(pending)     # a moved staging folder keeps the modes it was built with
            crash_point("pending-written")
            if self.fsync:
                os.sync()
            raise_first(self._verify(pending, expected, progress, read_back), uuid)
            os.rename(pending, final)
            if self.fsync:
                fsync_dir(self.root)
        report.files = len(expected)
        report.bytes = sum(e.size for e in expected.values())
        report.finished = _now()
        return report

    def read_back_for(self, folder: Path) -> str | None:
        try:
            same_device = os.stat(folder).st_dev == os.stat(self.root).st_dev
        except OSError:
            return None
        return self._read_back_mode() if same_device else None

    def _read_back_mode(self) -> str:
        # with fsync the read-back must come from the disk, as the verification below does
        return "disk" if self.fsync else "memory"

    def _write(self, source: Path, pending: Path, expected: Mapping[str, ExpectedFile],
               move: bool) -> dict[str, ReadBack]:
        """Put the bag's files in ``pending``; the read-backs done while copying."""
        if move and os.stat(source).st_dev == os.stat(self.root).st_dev:
            os.rename(source, pending)
            return {}
        pending.mkdir(parents=True)
        for rel in sorted({str(Path(p).parent) for p in expected}):
            (pending / rel).mkdir(parents=True, exist_ok=True)
        mode = self._read_back_mode()

        def copy(rel: str) -> ReadBack | None:
            want = expected[rel]
            size, digests, read_back = copy_hash_read_back(
                source / rel, pending / rel, list(want.digests) or ["sha256"],
                read_back=mode, writeback=self.fsync)
            if size != want.size or any(digests.get(a) != v for a, v in want.digests.items()):
                raise StorageError(f"{source / rel}: changed while being stored")
            return read_back

        paths = sorted(expected)
        done = map_files(copy, paths, self.workers, [expected[p].size for p in paths])
        return {rel: proof for rel, proof in zip(paths, done) if proof is not None}

    def _verify(self, folder: Path, expected: Mapping[str, ExpectedFile],
                progress: ProgressFn | None,
                read_back: Mapping[str, ReadBack] | None = None) -> list[Mismatch]:
        """Read every file of ``folder`` back (or take the read-back done while it was
        written, when it is proven to be of this very file) and compare."""
        found = {p for p, _ in self._walk(folder)}
        problems = [Mismatch("missing", p) for p in sorted(set(expected) - found)]
        problems += [Mismatch("untracked", p) for p in sorted(found - set(expected))]
        read_back = read_back or {}

        def check(rel: str) -> list[Mismatch]:
            want = expected[rel]
            path = folder / rel
            proof = read_back.get(rel) or want.read_back
            if proof is not None and self._counts(proof, want, path):
                if progress:
                    progress(want.size)
                return [Mismatch("changed", rel, alg, value, proof.digests[alg])
                        for alg, value in want.digests.items() if proof.digests[alg] != value]
            if self.fsync:
                _drop_cache(path)
            size, got = hash_file(path, list(want.digests))
            if progress:
                progress(size)
            if size != want.size:
                return [Mismatch("size", rel, "", str(want.size), str(size))]
            return [Mismatch("changed", rel, alg, value, got[alg])
                    for alg, value in want.digests.items() if got[alg] != value]

        paths = sorted(set(expected) & found)
        for found_problems in map_files(check, paths, self.workers,
                                        [expected[p].size for p in paths]):
            problems.extend(found_problems)
        return problems

    def _counts(self, proof: ReadBack, want: ExpectedFile, path: Path) -> bool:
        """Whether a read-back done while writing stands for reading ``path`` back now: it
        read this very file (same inode, size, modification time) with every algorithm
        wanted, and from the disk when this location flushes."""
        return (proof.identity[2] == want.size and set(want.digests) <= set(proof.digests)
                and (proof.from_disk or not self.fsync) and proof.holds_for(path))

    # -- reading ---------------------------------------------------------------------------
    def _aip_dir(self, uuid: str) -> Path:
        if not uuid or "/" in uuid or uuid.startswith("."):
            raise ObjectNotFound(f"not an AIP identifier: {uuid!r}")
        return self.root / uuid

    def _file(self, uuid: str, path: str) -> Path:
        return Path(self._file_name(uuid, path))

    def _file_name(self, uuid: str, path: str) -> str:
        # plain strings: this runs for every file an audit reads, and each Path costs µs
        if not uuid or "/" in uuid or uuid.startswith("."):
            raise ObjectNotFound(f"not an AIP identifier: {uuid!r}")
        if not path or path.startswith("/") or ".." in path.split("/"):
            raise ObjectNotFound(f"not a bag path: {path!r}")
        return f"{self.root}/{uuid}/{path}"

    @staticmethod
    def _walk(folder: Path, prefix: str = "") -> Iterator[tuple[str, os.stat_result]]:
        # scandir and plain strings: a listing of 20,000 files costs milliseconds, not seconds
        with os.scandir(folder) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if entry.is_dir() and not entry.is_symlink():
                    yield from FilesystemLocation._walk(Path(entry.path),
                                                        f"{prefix}{entry.name}/")
                elif not entry.is_dir():
                    yield f"{prefix}{entry.name}", entry.stat(follow_symlinks=False)

    def has_aip(self, uuid: str) -> bool:
        return self._aip_dir(uuid).is_dir()

    def list_aips(self) -> Iterator[str]:
        for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
            if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
                yield entry.name

    def list_files(self, uuid: str) -> Iterator[ObjectInfo]:
        folder = self._aip_dir(uuid)
        if not folder.is_dir():
            raise ObjectNotFound(f"AIP {uuid} is not at {self.name}")
        for rel, st in self._walk(folder):
            yield ObjectInfo(rel, st.st_size, st.st_mtime)

    def head(self, uuid: str, path: str) -> ObjectInfo:
        try:
            st = self._file(uuid, path).lstat()
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"{self.url_for(uuid, path)}: not found") from exc
        if not stat.S_ISREG(st.st_mode):
            raise ObjectNotFound(f"{self.url_for(uuid, path)}: not a regular file")
        return ObjectInfo(path, st.st_size, st.st_mtime)

    def open(self, uuid: str, path: str, start: int = 0, end: int | None = None) -> BinaryIO:
        target = self._file_name(uuid, path)
        try:
            raw = open(target, "rb")
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"{self.url_for(uuid, path)}: not found") from exc
        except OSError as exc:
            raise StorageError(f"{self.url_for(uuid, path)}: {exc.strerror}") from exc
        if start:
            raw.seek(start)
        if end is None:
            return raw
        return LimitedReader(raw, max(0, end - start))  # type: ignore[return-value]

    def open_descriptor(self, uuid: str, path: str) -> int | None:
        target = self._file_name(uuid, path)
        try:
            # non-blocking: opening a FIFO must not wait for a writer (regular files ignore it)
            fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"{self.url_for(uuid, path)}: not found") from exc
        except OSError as exc:
            raise StorageError(f"{self.url_for(uuid, path)}: {exc.strerror}") from exc
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise StorageError(f"{self.url_for(uuid, path)}: not a regular file")
        return fd

    def delete_aip(self, uuid: str) -> None:
        folder = self._aip_dir(uuid)
        if not folder.is_dir():
            raise ObjectNotFound(f"AIP {uuid} is not at {self.name}")
        trash = self.root / PENDING / f"deleting-{uuid}"
        os.rename(folder, trash)
        crash_point("delete-renamed")
        shutil.rmtree(trash)

    def url_for(self, uuid: str, path: str | None = None) -> str:
        base = f"{self.url.rstrip('/')}/{uuid}"
        return f"{base}/{quote(path)}" if path else f"{base}/"

    # -- repair in place and administrative objects --------------------------------------
    def put_file(self, uuid: str, path: str, source: Path, expected: ExpectedFile) -> None:
        target = self._file(uuid, path)
        if not self._aip_dir(uuid).is_dir():
            raise ObjectNotFound(f"AIP {uuid} is not at {self.name}")
        temporary = self.root / PENDING / f"file-{uuid}-{os.getpid()}-{os.urandom(4).hex()}"
        try:
            copy_and_hash(source, temporary, ["sha256"], fsync=self.fsync)
            if self.fsync:
                _drop_cache(temporary)
            size, got = hash_file(temporary, list(expected.digests) or ["sha256"])
            problems = [Mismatch("size", path, "", str(expected.size), str(size))] \
                if size != expected.size else []
            problems += [Mismatch("changed", path, alg, value, got[alg])
                         for alg, value in expected.digests.items() if got[alg] != value]
            raise_first(problems, uuid)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)
        if self.fsync:
            fsync_dir(target.parent)

    def delete_file(self, uuid: str, path: str) -> None:
        target = self._file(uuid, path)
        try:
            target.unlink()
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"{self.url_for(uuid, path)}: not found") from exc

    def _admin_path(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise StorageError(f"not an administrative object name: {name!r}")
        return self.root / ADMIN / name

    def write_admin_object(self, name: str, data: bytes) -> None:
        target = self._admin_path(name)
        private_dir(target.parent)
        temporary = target.with_name(f".{name}.{os.getpid()}.tmp")
        with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE),
                  "wb") as handle:
            handle.write(data)
            if self.fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temporary, target)
        if self.fsync:
            fsync_dir(target.parent)

    def read_admin_object(self, name: str) -> bytes:
        try:
            return self._admin_path(name).read_bytes()
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"{self.url}: no administrative object {name}") from exc

    def discard_pending(self) -> list[str]:
        """Remove copies left half-written by a crash; return their names. Do not run it
        while something writes to this location (``dangan storage clean`` checks)."""
        names = []
        for leftover in self.leftovers():
            self.discard_leftover(leftover)
            names.append(leftover.name)
        return names

    def leftovers(self) -> list[Leftover]:
        """Entries of ``.pending``: ``<uuid>`` (a copy being written), ``deleting-<uuid>``
        (a deletion under way), ``file-<uuid>-…`` (a file being replaced)."""
        found = []
        try:
            entries = sorted(os.scandir(self.root / PENDING), key=lambda e: e.name)
        except FileNotFoundError:
            return []
        for entry in entries:
            kind, uuid = "half-written", entry.name
            if entry.name.startswith("deleting-"):
                kind, uuid = "deleting", entry.name.removeprefix("deleting-")
            elif entry.name.startswith("file-"):
                kind, uuid = "replacing", entry.name.removeprefix("file-")[:36]
            size, modified = tree_size(Path(entry.path))
            found.append(Leftover(self.name, kind, f"{PENDING}/{entry.name}", uuid, size,
                                  modified))
        return found

    def discard_leftover(self, leftover: Leftover) -> None:
        name = leftover.name.removeprefix(f"{PENDING}/")
        if not name or "/" in name or name.startswith("."):
            raise StorageError(f"location {self.name}: not a leftover: {leftover.name!r}")
        target = self.root / PENDING / name
        try:
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"{target}: {exc.strerror}") from exc


def tree_size(path: Path) -> tuple[int, float | None]:
    """Bytes under ``path`` and its newest modification time (lstat: links not followed)."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return 0, None
    if not stat.S_ISDIR(st.st_mode):
        return st.st_size, st.st_mtime
    size, newest = 0, st.st_mtime
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                info = os.lstat(os.path.join(folder, name))
            except FileNotFoundError:
                continue
            size += info.st_size
            newest = max(newest, info.st_mtime)
    return size, newest


def _drop_cache(path: Path) -> None:
    if not hasattr(os, "posix_fadvise"):
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
