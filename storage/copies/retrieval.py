"""Reading AIP files back out of storage, verified on the way.

Every byte handed out is hashed as it streams; at the end the digest must equal the one in
the catalogue, or the read is an error — never a silently wrong file. A copy that fails (an
error, a missing object, a digest mismatch) is skipped for the next copy, and what happened
is recorded as a PREMIS event and an audit-log entry.

Verification is per file: a copy an audit found damaged still serves its intact files, and a
file is refused (:class:`NoIntactCopy`) only when no copy of *that file* reads intact. Copies
are tried nearest first, those known to hold the file damaged (the latest full audit of the
copy, or a failed read since) last; a file known damaged in every copy is refused without
reading it again.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import uuid as uuidlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select

from policies import (
    ConfigError,
    NotFoundError,
    Settings,
    StorageError,
    load_storage_policy,
)
from storage.catalogue import models
from storage.catalogue import Catalogue, utcnow
from storage.aip import CHUNK
from storage.fixity import CopyCheck
from storage.locations import Location, open_location
from storage.copies.errors import NoIntactCopy

#: audit findings that mean a copy cannot serve the file
DAMAGE_KINDS = frozenset({"changed", "truncated", "missing", "unreadable", "tag-altered"})
RETRIEVAL = "retrieval of "   # how the PREMIS events of failed reads begin
#: the copy states a file may still be read from, best first (every byte is verified anyway)
READABLE = ("verified", "damaged", "missing")


@dataclass(frozen=True)
class FileRef:
    """A bag file of an AIP as the catalogue knows it."""

    aip_uuid: str
    path: str
    size: int
    sha256: str
    mime: str | None


class Retriever:
    """Streams AIP files from the first healthy copy.

    Arguments:
        settings: the home's settings (storage policy names the locations).
        catalogue: the catalogue to read digests from and record events in.
    """

    def __init__(self, settings: Settings, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.policy = load_storage_policy(settings)
        self._locations: dict[str, Location] = {}

    def location(self, name: str) -> Location:
        """The location called ``name`` in the storage policy (opened once)."""
        if name not in self._locations:
            self._locations[name] = open_location(self.policy.location(name))
        return self._locations[name]

    def file(self, aip_uuid: str, path: str) -> FileRef:
        """The catalogue's record of one file (payload or tag file)."""
        row = self.catalogue.file_row(aip_uuid, path)
        return FileRef(aip_uuid, row.path, row.size, row.sha256, row.mime)

    def tag_files(self, aip_uuid: str) -> list[str]:
        """Bag tag files of a stored AIP (bagit.txt, manifests…), read from the first copy."""
        for copy in self._copies(aip_uuid):
            try:
                return sorted(i.path for i in self.location(copy.location).list_files(aip_uuid)
                              if "/" not in i.path)
            except (StorageError, ConfigError):
                continue
        raise StorageError(f"AIP {aip_uuid}: no readable copy")

    def _copies(self, aip_uuid: str, path: str | None = None,
                damage: dict[str, set[str]] | None = None) -> list[models.Copy]:
        """The copies to read ``path`` from, in order: the policy's nearest first, copies
        an audit found damaged after those it found intact, and copies known to hold this
        file damaged last."""
        copies = [c for c in self.catalogue.copies_of(aip_uuid) if c.status in READABLE]
        if not copies:
            raise NotFoundError(f"AIP {aip_uuid} has no stored copy")
        damage = damage or {}
        # the storage policy lists locations nearest first: try them in that order
        order = {spec.name: index for index, spec in enumerate(self.policy.locations)}
        return sorted(copies, key=lambda c: (path in damage.get(c.location, ()),
                                             READABLE.index(c.status),
                                             order.get(c.location, len(order)), c.location))

    def known_damage(self, aip_uuid: str) -> dict[str, set[str]]:
        """Location -> the paths known damaged there: the findings of the copy's latest full
        audit when it failed, and the files whose read failed since that audit."""
        with self.catalogue.session() as s:
            latest: dict[str, CopyCheck] = {}
            for check in s.scalars(select(CopyCheck).where(
                    CopyCheck.aip_uuid == aip_uuid, CopyCheck.depth == "full",
                    CopyCheck.outcome != "error").order_by(CopyCheck.finished_at)):
                latest[check.location] = check
            failed_reads = list(s.scalars(select(models.Event).where(
                models.Event.aip_uuid == aip_uuid, models.Event.type == "fixity check",
                models.Event.outcome == "fail", models.Event.detail.startswith(RETRIEVAL))))
        damage: dict[str, set[str]] = {}
        for location, check in latest.items():
            if check.outcome == "fail":
                damage[location] = {f["path"] for f in check.findings or []
                                    if f.get("kind") in DAMAGE_KINDS and f.get("path")}
        for event in failed_reads:
            check = latest.get(event.location or "")
            if check is None or _aware(event.at) > _aware(check.finished_at):
                damage.setdefault(event.location or "", set()).update(event.files or [])
        return damage

    def damaged_everywhere(self, aip_uuid: str, damage: dict[str, set[str]] | None = None
                           ) -> set[str]:
        """The paths of an AIP known damaged in every copy it has (none can serve them)."""
        damage = self.known_damage(aip_uuid) if damage is None else damage
        copies = [c for c in self.catalogue.copies_of(aip_uuid) if c.status in READABLE]
        if not copies:
            return set()
        return set.intersection(*(damage.get(c.location, set()) for c in copies))

    def open(self, ref: FileRef, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Like :meth:`stream`, but the file is refused before anything is sent: a file
        known damaged in every copy at once, a file of one chunk once every copy was
        read, a larger one once a copy gave its first chunk intact so far.

        Raises:
            NoIntactCopy: no copy serves the file (the failures are recorded).
        """
        damage = self.known_damage(ref.aip_uuid)
        if ref.path in self.damaged_everywhere(ref.aip_uuid, damage):
            where = sorted(loc for loc, paths in damage.items() if ref.path in paths)
            raise NoIntactCopy(ref.aip_uuid, ref.path,
                               [f"{loc}: known damaged" for loc in where], known=True)
        chunks = self.stream(ref, start, end, damage)
        try:
            first = next(chunks)
        except StopIteration:
            return iter(())
        return itertools.chain([first], chunks)

    def stream(self, ref: FileRef, start: int = 0, end: int | None = None,
               damage: dict[str, set[str]] | None = None) -> Iterator[bytes]:
        """Yield the bytes of a file (or of ``start``..``end``), from the first good copy.

        A whole-file read is verified: the last chunk is held back until the digest matched,
        and a mismatch raises :class:`FixityError` instead of completing the read. A range
        cannot be checked against the whole file's digest; it is served as stored, from a
        copy not known to hold the file damaged when there is one.
        """
        whole = start == 0 and (end is None or end >= ref.size)
        failures: list[str] = []
        sent = False
        for copy in self._copies(ref.aip_uuid, ref.path, damage):
            try:
                location = self.location(copy.location)
                chunks = (self._verified(location, ref) if whole
                          else self._range(location, ref, start, end))
                for chunk in chunks:
                    sent = True
                    yield chunk
                return
            except NoIntactCopy:
                raise       # bytes were sent already: another copy cannot continue them
            except (_CopyFailed, StorageError, ConfigError) as exc:
                failures.append(f"{copy.location}: {exc}")
                self._record_failure(ref, copy.location, str(exc))
                if sent:    # the read broke off part way: the answer cannot be completed
                    raise NoIntactCopy(ref.aip_uuid, ref.path, failures) from exc
        raise NoIntactCopy(ref.aip_uuid, ref.path, failures)

    @staticmethod
    def _range(location: Location, ref: FileRef, start: int, end: int | None
               ) -> Iterator[bytes]:
        with location.open(ref.aip_uuid, ref.path, start, end) as stream:
            while chunk := stream.read(CHUNK):
                yield chunk

    def _verified(self, location: Location, ref: FileRef) -> Iterator[bytes]:
        digest = hashlib.sha256()
        size = 0
        held: bytes | None = None
        emitted = False
        with location.open(ref.aip_uuid, ref.path) as stream:
            while chunk := stream.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                if held is not None:
                    yield held
                    emitted = True
                held = chunk
        actual = digest.hexdigest()
        if size != ref.size or actual != ref.sha256:
            message = (f"sha256 {actual} (size {size}) differs from the catalogue's "
                       f"{ref.sha256} (size {ref.size})")
            if emitted:
                self._record_failure(ref, location.name, message)
                raise NoIntactCopy(ref.aip_uuid, ref.path, [f"{location.name}: {message}"])
            raise _CopyFailed(message)
        if held is not None:
            yield held

    def save(self, ref: FileRef, out: Path) -> str:
        """Write a verified file to ``out`` and return the location it came from.

        Each copy is written to a temporary name and hashed on the way; only an intact one
        is renamed to ``out``. A damaged or unreadable copy is recorded and the next is tried.

        Raises:
            FixityError: no copy could be read intact (``out`` is not created).
        """
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(f".{out.name}.partial")
        failures: list[str] = []
        try:
            for copy in self._copies(ref.aip_uuid, ref.path, self.known_damage(ref.aip_uuid)):
                try:
                    size, actual = self._copy_to(self.location(copy.location), ref, partial)
                except (StorageError, ConfigError) as exc:
                    message = str(exc)
                else:
                    if size == ref.size and actual == ref.sha256:
                        os.replace(partial, out)
                        return copy.location
                    message = (f"sha256 {actual} (size {size}) differs from the catalogue's "
                               f"{ref.sha256} (size {ref.size})")
                failures.append(f"{copy.location}: {message}")
                self._record_failure(ref, copy.location, message)
        finally:
            partial.unlink(missing_ok=True)
        raise NoIntactCopy(ref.aip_uuid, ref.path, failures)

    @staticmethod
    def _copy_to(location: Location, ref: FileRef, target: Path) -> tuple[int, str]:
        digest = hashlib.sha256()
        size = 0
        with location.open(ref.aip_uuid, ref.path) as stream, open(target, "wb") as handle:
            while chunk := stream.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                handle.write(chunk)
        return size, digest.hexdigest()

    def _record_failure(self, ref: FileRef, location: str, message: str) -> None:
        """A failed read of one copy: a PREMIS event (the file is then known damaged there
        until the copy's next full audit) and an entry in the audit log auditors read."""
        event_id = str(uuidlib.uuid4())
        with self.catalogue.session() as s:
            s.add(models.Event(id=event_id, aip_uuid=ref.aip_uuid, type="fixity check",
                               at=utcnow(), outcome="fail",
                               detail=f"{RETRIEVAL}{ref.path} from {location}",
                               outcome_detail=message, agents=[], files=[ref.path],
                               location=location))
            self.catalogue.append_audit(s, "dangan", "retrieval-failed", ref.aip_uuid, {
                "path": ref.path, "location": location, "event": event_id})


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


class _CopyFailed(Exception):
    """A copy failed before any byte was handed out; the next copy may serve."""
