"""The storage-location interface every backend implements (filesystem, S3).

A location holds AIPs "exploded": one object per bag file, under ``<aip-uuid>/``. Writing an
AIP is all or nothing: the copy becomes visible (listed, readable) only after every file was
written and read back against its expected digests.
"""

from __future__ import annotations

import io
import os
import signal
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

from policies.errors import FixityError, ObjectNotFound, StorageError
from storage.aip import ReadBack

ProgressFn = Callable[[int], None]


@dataclass(frozen=True)
class ExpectedFile:
    """What a bag file must be: its size and digests (algorithm -> hex).

    ``read_back`` is the evidence of a read-back already done while the file was written
    in staging (large files only). A location that takes the very same file (a rename on
    the same device) may count it as its own read-back; any other copy is read again.
    """

    size: int
    digests: Mapping[str, str]
    read_back: ReadBack | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ObjectInfo:
    """What a location knows of one stored file without reading it."""

    path: str
    size: int
    modified: float | None = None
    checksum_sha256: str | None = None


@dataclass(frozen=True)
class Leftover:
    """Something an interrupted write left at a location, visible to no reader.

    Attributes:
        location: the location's name.
        kind: ``half-written`` (a copy never published: files under ``.pending`` or objects
            without a publication marker), ``multipart`` (an S3 multipart upload never
            completed), ``deleting`` (a copy whose deletion was interrupted), ``replacing``
            (a file being replaced in place by a repair).
        name: what it is called there (a folder, a key prefix, an upload's key).
        uuid: the AIP it belongs to, when known.
        size: bytes it takes.
        modified: when it was last written (POSIX time), or None.
    """

    location: str
    kind: str
    name: str
    uuid: str | None
    size: int
    modified: float | None


_CRASH_COUNTS: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Fault injection for the crash-safety tests: ``DANGAN_CRASH_AT=NAME`` kills the process
    the first time it passes here, ``NAME:N`` the N-th time."""
    wanted = os.environ.get("DANGAN_CRASH_AT", "")
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    _CRASH_COUNTS[name] = _CRASH_COUNTS.get(name, 0) + 1
    if _CRASH_COUNTS[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class CopyReport:
    """The result of writing (or finding) one AIP copy at a location.

    Attributes:
        location: the location's name.
        url: where the copy lives.
        files: number of files verified by reading them back.
        bytes: bytes verified.
        reused: the complete copy was already there (re-run after a crash) and verified.
        started, finished: ISO timestamps of the write-and-verify.
    """

    location: str
    url: str
    files: int = 0
    bytes: int = 0
    reused: bool = False
    started: str = ""
    finished: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Mismatch:
    """One difference between a stored copy and what was expected."""

    kind: str          # "missing" | "changed" | "untracked" | "size"
    path: str
    algorithm: str = ""
    expected: str = ""
    actual: str = ""


class Location(ABC):
    """An AIP storage location."""

    name: str
    url: str

    @abstractmethod
    def put_aip(self, uuid: str, source: Path, expected: Mapping[str, ExpectedFile], *,
                move: bool = False, progress: ProgressFn | None = None) -> CopyReport:
        """Store the bag in folder ``source`` as AIP ``uuid``, verified, atomically visible.

        ``expected`` maps every bag-relative path to its size and digests; a file that reads
        back differently raises :class:`FixityError` and nothing becomes visible. With
        ``move`` the location may take the files away from ``source`` instead of copying.
        If a complete copy is already there, it is verified and reused.
        """

    def read_back_for(self, folder: Path) -> str | None:
        """How files written in ``folder`` should be read back while they are written, for
        this location to count that read-back as its own when it takes the files with
        ``move``: ``"disk"``, ``"memory"``, or None when it copies them anyway (then a
        read-back in ``folder`` would prove nothing here)."""
        return None

    @abstractmethod
    def has_aip(self, uuid: str) -> bool:
        """Whether a complete (published) copy of the AIP is visible here."""

    @abstractmethod
    def list_aips(self) -> Iterator[str]:
        """The UUIDs of the AIPs visible here."""

    @abstractmethod
    def list_files(self, uuid: str) -> Iterator[ObjectInfo]:
        """Every stored file of an AIP, bag-relative paths."""

    @abstractmethod
    def head(self, uuid: str, path: str) -> ObjectInfo:
        """Size (and stored checksum where the backend keeps one) of one file."""

    @abstractmethod
    def open(self, uuid: str, path: str, start: int = 0, end: int | None = None) -> BinaryIO:
        """A readable stream of one file's bytes, ``start`` to ``end`` (exclusive)."""

    def open_descriptor(self, uuid: str, path: str) -> int | None:
        """An OS file descriptor of one stored file, for reading many small files without a
        stream object each (the caller closes it); None where files are not local."""
        return None

    @abstractmethod
    def delete_aip(self, uuid: str) -> None:
        """Remove a copy (callers check retention first)."""

    @abstractmethod
    def url_for(self, uuid: str, path: str | None = None) -> str:
        """The URL of the AIP copy, or of one of its files."""

    def verify_aip(self, uuid: str, expected: Mapping[str, ExpectedFile],
                   algorithms: tuple[str, ...] = ("sha256",)) -> list[Mismatch]:
        """Re-read every file of a stored copy and compare; [] when it is intact."""
        from storage.aip import digest_stream, read_chunks

        problems: list[Mismatch] = []
        stored = {info.path: info for info in self.list_files(uuid)}
        for path, want in sorted(expected.items()):
            if path not in stored:
                problems.append(Mismatch("missing", path))
                continue
            algs = [a for a in algorithms if a in want.digests] or ["sha256"]
            with self.open(uuid, path) as stream:
                size, got = digest_stream(read_chunks(stream), algs, expected_size=want.size)
            if size != want.size:
                problems.append(Mismatch("size", path, "", str(want.size), str(size)))
            for alg in algs:
                if got[alg] != want.digests.get(alg):
                    problems.append(Mismatch("changed", path, alg, want.digests.get(alg, ""),
                                             got[alg]))
        problems.extend(Mismatch("untracked", p) for p in sorted(set(stored) - set(expected)))
        return problems

    # -- optional operations: repair in place and administrative objects --------------------
    # A backend that cannot do one of these raises StorageError; callers fall back (a whole
    # copy rewritten by put_aip) or report the operation as not done.

    def put_file(self, uuid: str, path: str, source: Path, expected: ExpectedFile) -> None:
        """Write (or replace) one file of a published copy from local file ``source``.

        The new bytes become visible only after they were read back and matched
        ``expected``; otherwise FixityError is raised and the old file is left as it was.
        """
        raise StorageError(f"location {self.name}: files cannot be replaced in place")

    def add_file(self, uuid: str, path: str, source: Path, expected: ExpectedFile) -> bool:
        """Add a new object to a published copy (a new version of the AIP), never replacing.

        An object already at ``path`` with the expected bytes is kept (an interrupted update
        run again) and False is returned; one with other bytes raises FixityError and is left
        as it is. The new bytes become visible only after they were read back and matched.
        """
        from storage.aip import digest_stream, read_chunks

        try:
            with self.open(uuid, path) as stream:
                size, got = digest_stream(read_chunks(stream), list(expected.digests) or ["sha256"])
        except ObjectNotFound:
            self.put_new_file(uuid, path, source, expected)
            return True
        problems = [Mismatch("size", path, "", str(expected.size), str(size))] \
            if size != expected.size else []
        problems += [Mismatch("changed", path, alg, value, got[alg])
                     for alg, value in expected.digests.items() if got.get(alg) != value]
        raise_first(problems, uuid)
        return False

    def put_new_file(self, uuid: str, path: str, source: Path, expected: ExpectedFile) -> None:
        """Write one object that is not there yet (see :meth:`add_file`)."""
        self.put_file(uuid, path, source, expected)

    def delete_file(self, uuid: str, path: str) -> None:
        """Remove one file of a published copy (used to remove files that do not belong)."""
        raise StorageError(f"location {self.name}: files cannot be removed one by one")

    def write_admin_object(self, name: str, data: bytes) -> None:
        """Store a small administrative object beside the AIPs, outside every AIP folder.

        Used for the audit-log anchor; written atomically (old or new, never half).
        """
        raise StorageError(f"location {self.name}: cannot keep administrative objects")

    def read_admin_object(self, name: str) -> bytes:
        """Read an administrative object; ObjectNotFound when it was never written."""
        raise StorageError(f"location {self.name}: cannot keep administrative objects")

    # -- what interrupted writes left ------------------------------------------------------
    def leftovers(self) -> list[Leftover]:
        """What interrupted writes left here that no reader sees (never a published copy)."""
        return []

    def discard_leftover(self, leftover: Leftover) -> None:
        """Remove one leftover found by :meth:`leftovers` (callers make sure nothing is
        writing it)."""
        raise StorageError(f"location {self.name}: leftovers cannot be removed")

    # -- WORM: retention locks where the backend enforces them ----------------------------
    def set_retention(self, uuid: str, lock: "RetentionLock",
                      paths: "Iterable[str] | None" = None) -> str:
        """Apply a retention lock to every object of a published copy (or only to ``paths``,
        the objects a new version added: the others keep their locks untouched).

        Returns ``"server"`` when the backend itself now refuses deletion (S3 Object Lock),
        ``"catalogue"`` when only Dangan's own refusal (from the catalogue) protects the copy.
        """
        return "catalogue"

    def get_retention(self, uuid: str) -> "RetentionLock | None":
        """The lock the backend itself holds on a copy, or None (none, or not supported)."""
        return None


@dataclass(frozen=True)
class RetentionLock:
    """A WORM lock on a stored copy (S3 Object Lock terms).

    Attributes:
        mode: ``COMPLIANCE`` (nobody can shorten or remove it) or ``GOVERNANCE`` (a
            privileged user can).
        retain_until: deletion is refused until this moment (timezone-aware), or None.
        legal_hold: deletion is refused until the hold is released, whatever the date.
    """

    mode: str = "COMPLIANCE"
    retain_until: datetime | None = None
    legal_hold: bool = False

    def in_force(self, now: datetime | None = None) -> bool:
        """Whether the lock refuses deletion at ``now`` (default: the current time)."""
        now = now or datetime.now(timezone.utc)
        return self.legal_hold or (self.retain_until is not None and self.retain_until > now)

    def describe(self) -> str:
        """A short human-readable statement of the lock, for messages."""
        parts = []
        if self.retain_until is not None:
            parts.append(f"{self.mode} until {self.retain_until.isoformat(timespec='seconds')}")
        if self.legal_hold:
            parts.append("legal hold")
        return ", ".join(parts) or "no lock"


class LimitedReader(io.RawIOBase):
    """A read-only view of at most ``length`` bytes of another stream."""

    def __init__(self, raw: BinaryIO, length: int | None) -> None:
        self.raw, self.remaining = raw, length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        want = len(buffer) if self.remaining is None else min(len(buffer), self.remaining)
        if want <= 0:
            return 0
        data = self.raw.read(want)
        buffer[: len(data)] = data
        if self.remaining is not None:
            self.remaining -= len(data)
        return len(data)

    def close(self) -> None:
        self.raw.close()
        super().close()


def read_manifest(location: Location, uuid: str, name: str) -> dict[str, str]:
    """Parse one BagIt manifest of a stored copy: bag-relative path -> hex digest."""
    from urllib.parse import unquote

    entries: dict[str, str] = {}
    with location.open(uuid, name) as stream:
        for line in stream.read().decode("utf-8").splitlines():
            if line.strip():
                digest, _, path = line.partition(" ")
                entries[unquote(path.strip().replace("%0D", "\r").replace("%0A", "\n"))] = digest.lower()
    return entries


def verify_stored_bag(location: Location, uuid: str,
                      payload: Mapping[str, ExpectedFile]) -> list[Mismatch]:
    """Check a complete stored copy against its own manifests and the expected payload.

    Used when a re-run finds the AIP already published: the tag files written by the first
    run stay authoritative, but every byte is re-read and the payload must be the same.
    """
    try:
        manifest = read_manifest(location, uuid, "manifest-sha256.txt")
        tags = read_manifest(location, uuid, "tagmanifest-sha256.txt")
    except Exception as exc:  # noqa: BLE001 - any failure to read means not reusable
        return [Mismatch("missing", f"manifest ({exc})")]
    problems = [Mismatch("changed", p, "sha256", want.digests["sha256"], manifest.get(p, ""))
                for p, want in payload.items() if manifest.get(p) != want.digests["sha256"]]
    listed = {**manifest, **tags}
    expected = {p: ExpectedFile(-1, {"sha256": d}) for p, d in listed.items()}
    sizes = {info.path: info.size for info in location.list_files(uuid)}
    expected = {p: ExpectedFile(sizes.get(p, -1), e.digests) for p, e in expected.items()}
    for path in ("manifest-sha256.txt", "tagmanifest-sha256.txt"):
        expected.setdefault(path, ExpectedFile(sizes.get(path, -1), {}))
    checked = {p: e for p, e in expected.items() if e.digests}
    problems += location.verify_aip(uuid, checked)
    problems = [p for p in problems if not (p.kind == "untracked" and p.path in expected)]
    return problems


def raise_first(problems: list[Mismatch], uuid: str) -> None:
    """Raise FixityError describing the problems of a copy, if there are any."""
    if not problems:
        return
    first = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    raise FixityError(f"AIP {uuid}: {first.kind} {first.path}{more}", path=first.path,
                      algorithm=first.algorithm, expected=first.expected, actual=first.actual)
