"""Reading AIP files back out of storage, verified on the way.

Every byte handed out is hashed as it streams; at the end the digest must equal the one in
the catalogue, or the read is an error — never a silently wrong file. A copy that fails (an
error, a missing object, a digest mismatch) is skipped for the next copy, and what happened
is recorded as a PREMIS event.
"""

from __future__ import annotations

import hashlib
import os
import uuid as uuidlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from policies import FixityError, NotFoundError, Settings, StorageError, load_storage_policy
from storage.catalogue import models
from storage.catalogue import Catalogue, utcnow
from storage.aip import CHUNK
from storage.locations import Location, open_location


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
            except StorageError:
                continue
        raise StorageError(f"AIP {aip_uuid}: no readable copy")

    def _copies(self, aip_uuid: str) -> list[models.Copy]:
        copies = [c for c in self.catalogue.copies_of(aip_uuid) if c.status == "verified"]
        if not copies:
            raise NotFoundError(f"AIP {aip_uuid} has no verified copy")
        # the storage policy lists locations nearest first: try them in that order
        order = {spec.name: index for index, spec in enumerate(self.policy.locations)}
        return sorted(copies, key=lambda c: (order.get(c.location, len(order)), c.location))

    def stream(self, ref: FileRef, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Yield the bytes of a file (or of ``start``..``end``), from the first good copy.

        A whole-file read is verified: the last chunk is held back until the digest matched,
        and a mismatch raises :class:`FixityError` instead of completing the read. A range
        cannot be checked against the whole file's digest; it is served as stored.
        """
        whole = start == 0 and (end is None or end >= ref.size)
        failures: list[str] = []
        for copy in self._copies(ref.aip_uuid):
            location = self.location(copy.location)
            try:
                if whole:
                    yield from self._verified(location, ref)
                else:
                    with location.open(ref.aip_uuid, ref.path, start, end) as stream:
                        while chunk := stream.read(CHUNK):
                            yield chunk
                return
            except _CopyFailed as exc:
                failures.append(f"{copy.location}: {exc}")
                self._record_failure(ref, copy.location, str(exc))
            except StorageError as exc:
                failures.append(f"{copy.location}: {exc}")
                self._record_failure(ref, copy.location, str(exc))
        raise FixityError(f"{ref.aip_uuid}/{ref.path}: no copy could be read intact: "
                          + "; ".join(failures), path=ref.path)

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
                raise FixityError(f"{ref.aip_uuid}/{ref.path}: {message}", path=ref.path,
                                  algorithm="sha256", expected=ref.sha256, actual=actual)
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
            for copy in self._copies(ref.aip_uuid):
                try:
                    size, actual = self._copy_to(self.location(copy.location), ref, partial)
                except StorageError as exc:
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
        raise FixityError(f"{ref.aip_uuid}/{ref.path}: no copy could be read intact: "
                          + "; ".join(failures), path=ref.path)

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
        with self.catalogue.session() as s:
            s.add(models.Event(id=str(uuidlib.uuid4()), aip_uuid=ref.aip_uuid, type="fixity check",
                               at=utcnow(), outcome="fail",
                               detail=f"retrieval of {ref.path} from {location}",
                               outcome_detail=message, agents=[], files=[ref.path],
                               location=location))


class _CopyFailed(Exception):
    """A copy failed before any byte was handed out; the next copy may serve."""
