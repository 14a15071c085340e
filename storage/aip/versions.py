"""Versions of an AIP: forward deltas under the AIP's own prefix, nothing ever rewritten.

Layout at every location (README, "AIP versions")::

    <uuid>/bagit.txt … data/…                    version 1, exactly as ingested (never touched)
    <uuid>/versions/v<N>-<attempt>/data/objects/…  payload first stored by version N
    <uuid>/versions/v<N>-<attempt>/data/metadata/mets.xml, record.json, data/logs/…
    <uuid>/versions/v<N>-<attempt>/bagit.txt, bag-info.txt, manifest-*.txt, tagmanifest-*.txt
    <uuid>/versions/v<N>-<attempt>/inventory.json  written last: its presence commits version N

An inventory maps every logical path of the version's bag (what ``dangan get --version N``
materialises) to its size, digests and the stored path of the object holding its bytes: an
unchanged file points at the object of the version that first stored it, so its bytes are
kept once. ``<attempt>`` is new for every run of an update: a run killed before its inventory
leaves objects no inventory names (visible to audits as part of the copy, never as a version),
and the next run writes its own, so no object is ever overwritten; a run killed after its
inventory was written is adopted by the next one (same request: done once). Version 1 has no
inventory: its logical paths are its stored paths, read from its own manifests.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid as uuidlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from policies.errors import NotFoundError, StorageError

VERSIONS = "versions/"
INVENTORY = "inventory.json"
_FOLDER = re.compile(r"^versions/v(\d+)-([0-9a-f]+)/")
KINDS = ("modification", "replacement", "withdrawal")


def is_version_object(path: str) -> bool:
    """Whether a stored path belongs to a version after the first."""
    return path.startswith(VERSIONS)


def version_folder(number: int, attempt: str) -> str:
    """The stored folder (with its trailing slash) of one attempt at version ``number``."""
    return f"{VERSIONS}v{number}-{attempt}/"


def new_attempt() -> str:
    """A fresh attempt token (a new run of an update never writes where another wrote)."""
    return uuidlib.uuid4().hex[:12]


def request_fingerprint(reason: str, operations: Iterable[tuple[str, str, str]]) -> str:
    """SHA-256 of what an update asks for: its reason and (operation, path, sha256) triples;
    the same update run again has the same fingerprint."""
    digest = hashlib.sha256(reason.encode("utf-8"))
    for op, path, sha in sorted(operations):
        digest.update(f"\n{op}\t{path}\t{sha}".encode("utf-8"))
    return digest.hexdigest()


@dataclass
class Inventory:
    """What one version is: its logical files and what changed since the one it supersedes.

    Attributes:
        aip: the AIP UUID.
        number: the version number (1 = as ingested).
        supersedes: the version it replaces (None for version 1).
        created, agent, reason, kind: when, by whom, why, and the PREMIS event type.
        files: logical path -> {"size", "digests", "stored"} (stored path of the object).
        changes: {"added": [...], "replaced": [...], "withdrawn": [...], "records": [...]}.
        withdrawn: logical path -> {"version": last version holding it, "stored": ...}.
        request: the fingerprint of the update that made it (see :func:`request_fingerprint`).
        path: the stored path of this inventory (None for version 1).
    """

    aip: str
    number: int
    supersedes: int | None
    created: str
    agent: str
    reason: str
    kind: str
    files: dict[str, dict[str, Any]]
    changes: dict[str, list[Any]] = field(default_factory=dict)
    withdrawn: dict[str, dict[str, Any]] = field(default_factory=dict)
    request: str = ""
    path: str | None = None

    def to_json(self) -> bytes:
        data = {"aip": self.aip, "version": self.number, "supersedes": self.supersedes,
                "created": self.created, "agent": self.agent, "reason": self.reason,
                "kind": self.kind, "request": self.request, "changes": self.changes,
                "withdrawn": self.withdrawn, "files": self.files}
        return json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, path: str | None = None) -> "Inventory":
        raw = json.loads(data)
        return cls(raw["aip"], int(raw["version"]), raw.get("supersedes"), raw["created"],
                   raw.get("agent", ""), raw.get("reason", ""), raw.get("kind", "modification"),
                   raw["files"], raw.get("changes") or {}, raw.get("withdrawn") or {},
                   raw.get("request", ""), path)

    def stored(self, logical: str) -> str:
        """The stored path of one logical file of this version."""
        try:
            return self.files[logical]["stored"]
        except KeyError:
            raise NotFoundError(f"AIP {self.aip} version {self.number} has no file "
                                f"{logical!r}") from None

    def expected(self) -> dict[str, Any]:
        """Logical path -> ExpectedFile of every file of the version's bag."""
        from storage.locations import ExpectedFile

        return {p: ExpectedFile(int(f["size"]), dict(f["digests"])) for p, f in self.files.items()}


def first_version(uuid: str, files: Mapping[str, Any], created: str, agent: str) -> Inventory:
    """Version 1 of an AIP from its stored files (path -> ExpectedFile, or a catalogue row
    with ``size`` and ``digests``): every file outside ``versions/`` is its own logical file."""
    entries = {}
    for path, f in files.items():
        if is_version_object(path):
            continue
        entries[path] = {"size": int(f.size), "digests": dict(f.digests), "stored": path}
    return Inventory(uuid, 1, None, created, agent, "ingest", "ingestion", entries)


# --------------------------------------------------------------------------- storage side


def committed_inventories(location: Any, uuid: str) -> list[Inventory]:
    """Every committed version (inventory present) of an AIP at a location, by number.

    Two committed attempts at one number cannot both exist unless two updates ran at once
    behind the lock's back; the earliest written (by its ``created``) is taken.
    """
    found: dict[int, Inventory] = {}
    for info in location.list_files(uuid):
        match = _FOLDER.match(info.path)
        if match is None or info.path != f"{match.group(0)}{INVENTORY}":
            continue
        with location.open(uuid, info.path) as stream:
            inventory = Inventory.from_json(stream.read(), info.path)
        number = int(match.group(1))
        if inventory.number != number or inventory.aip != uuid:
            raise StorageError(f"{location.url_for(uuid, info.path)}: names version "
                               f"{inventory.number} of {inventory.aip}")
        if number not in found or inventory.created < found[number].created:
            found[number] = inventory
    return [found[n] for n in sorted(found)]


def discard_uncommitted(location: Any, uuid: str) -> list[str]:
    """Remove the objects of attempts that never wrote their inventory (an update killed
    part-way): they belong to no version and nobody reads them. Objects the location refuses
    to delete (a lock) stay, and an audit lists them as untracked. Callers hold the AIP's
    update lock. Returns the stored paths removed."""
    folders: dict[str, list[str]] = {}
    for info in location.list_files(uuid):
        match = _FOLDER.match(info.path)
        if match is not None:
            folders.setdefault(match.group(0), []).append(info.path)
    removed = []
    for folder, paths in sorted(folders.items()):
        if f"{folder}{INVENTORY}" in paths:
            continue
        for path in sorted(paths):
            try:
                location.delete_file(uuid, path)
            except (StorageError, OSError):
                continue
            removed.append(path)
    return removed


@dataclass
class PublishedVersion:
    """What :func:`publish_version` wrote: bytes and objects new at each location."""

    bytes_written: int = 0
    objects_written: int = 0
    locations: list[str] = field(default_factory=list)


def publish_version(locations: Sequence[Any], uuid: str, folder: Path,
                    objects: Mapping[str, Any], inventory: Inventory, *, lock: Any = None,
                    crash: Callable[[str], None] = lambda name: None) -> PublishedVersion:
    """Write a version's new objects to every location, then its inventory, last.

    ``folder`` holds each new object at its stored path (``versions/v<N>-<attempt>/…``);
    ``objects`` maps those paths to ExpectedFile. Nothing existing is replaced: an object
    already there with the same bytes (a re-run) is kept. At each location the inventory is
    written only after every object was written and read back, so a version is committed
    at a location exactly when all of it is there. With ``lock`` (a RetentionLock) the new
    objects and the inventory get it, and only they: the objects of earlier versions keep
    theirs, untouched.
    """
    from storage.aip.digest import hash_file
    from storage.locations import ExpectedFile

    assert inventory.path is not None
    result = PublishedVersion()
    inventory_file = folder / inventory.path
    inventory_file.parent.mkdir(parents=True, exist_ok=True)
    inventory_file.write_bytes(inventory.to_json())
    size, digests = hash_file(inventory_file, ["sha256"])
    committing = ExpectedFile(size, digests)
    for location in locations:
        for path in sorted(objects):
            if location.add_file(uuid, path, folder / path, objects[path]):
                result.bytes_written += objects[path].size
                result.objects_written += 1
            crash("version-object")
        crash("version-objects-written")
        if location.add_file(uuid, inventory.path, inventory_file, committing):
            result.bytes_written += size
            result.objects_written += 1
        if lock is not None:
            location.set_retention(uuid, lock, paths=[*sorted(objects), inventory.path])
        result.locations.append(location.name)
        crash("version-committed-one")
    return result


# --------------------------------------------------------------------------- catalogue side


@dataclass(frozen=True)
class VersionInfo:
    """One version as the catalogue knows it (what the portal's 版本历史 shows)."""

    number: int
    created: str
    agent: str
    reason: str
    kind: str
    supersedes: int | None
    changes: dict[str, list[Any]]
    file_count: int
    bytes_added: int
    inventory: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.number, "created": self.created, "agent": self.agent,
                "reason": self.reason, "kind": self.kind, "supersedes": self.supersedes,
                "changes": self.changes, "files": self.file_count,
                "bytes_added": self.bytes_added, "inventory": self.inventory}


def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.isoformat(timespec="seconds")


def versions_of(session: Any, aip_uuid: str) -> list[VersionInfo]:
    """Every version of an AIP, oldest first; an AIP never updated has its version 1 only.

    ``session``: an ORM session, or a :class:`storage.catalogue.reading.Rows`."""
    from storage.catalogue import reading

    return [VersionInfo(**v) for v in reading.versions(_rows(session), aip_uuid)]


def _rows(session: Any) -> Any:
    from storage.catalogue import reading

    if isinstance(session, reading.Rows):
        return session
    return reading.Rows.of_connection(session.connection())


def current_version(session: Any, aip_uuid: str) -> int:
    """The newest version number of an AIP (1 when it was never updated)."""
    from storage.catalogue import reading

    return reading.current_version(_rows(session), aip_uuid)


def version_changes(session: Any, aip_uuid: str, number: int) -> dict[str, list[Any]]:
    """What version ``number`` changed: added / replaced / withdrawn paths, record fields."""
    for info in versions_of(session, aip_uuid):
        if info.number == number:
            return info.changes
    raise NotFoundError(f"AIP {aip_uuid} has no version {number}")


def version_files(session: Any, aip_uuid: str, number: int | None = None) -> dict[str, Any]:
    """Logical path -> the catalogue's File row of the stored object holding it, for one
    version (default: the newest)."""
    from sqlalchemy import select

    from storage.catalogue import models as m
    from storage.catalogue import reading

    paths = reading.version_paths(_rows(session), aip_uuid, number)
    stored = {row.path: row for row in session.scalars(
        select(m.File).where(m.File.aip_uuid == aip_uuid))}
    return {logical: stored[path] for logical, path in paths.items()}


def stored_by_digest(session: Any, aip_uuid: str) -> dict[str, tuple[str, int]]:
    """sha256 -> (stored path, size) of every object stored for an AIP (first wins): an
    added or replaced file with these bytes is not stored again."""
    from sqlalchemy import select

    from storage.catalogue import models as m

    found: dict[str, tuple[str, int]] = {}
    for path, sha, size in session.execute(select(m.File.path, m.File.sha256, m.File.size)
                                           .where(m.File.aip_uuid == aip_uuid)
                                           .order_by(m.File.id)):
        found.setdefault(sha, (path, size))
    return found


def inventory_of(session: Any, aip_uuid: str, number: int | None = None) -> Inventory:
    """The inventory of one version, from the catalogue (version 1 synthesised)."""
    from storage.catalogue import models as m
    from sqlalchemy import select

    number = number or current_version(session, aip_uuid)
    files = version_files(session, aip_uuid, number)
    entries = {p: {"size": r.size, "digests": dict(r.digests) or {"sha256": r.sha256},
                   "stored": r.path} for p, r in files.items()}
    info = next(v for v in versions_of(session, aip_uuid) if v.number == number)
    withdrawn: dict[str, dict[str, Any]] = {}
    for row in session.scalars(select(m.AipVersion).where(
            m.AipVersion.aip_uuid == aip_uuid, m.AipVersion.number <= number)
            .order_by(m.AipVersion.number)):
        for path in (row.changes or {}).get("withdrawn", []):
            withdrawn[path] = {"version": row.number - 1}
        for path in (row.changes or {}).get("added", []):
            withdrawn.pop(path, None)
    return Inventory(aip_uuid, number, info.supersedes, info.created, info.agent, info.reason,
                     info.kind, entries, info.changes, withdrawn, "", info.inventory)


def object_use(stored: str) -> str:
    """The catalogue ``use`` of a stored object of a version, from its logical path."""
    match = _FOLDER.match(stored)
    rest = stored[match.end():] if match else stored
    if rest.startswith("data/objects/"):
        return "original"
    if rest.startswith(("data/preservation/", "data/access/")):
        return rest.split("/", 2)[1]       # derivatives (ingest.normalise)
    if rest.endswith("mets.xml"):
        return "mets"
    return "metadata" if rest.startswith("data/") else "tag"


def derived_source(stored: str) -> str | None:
    """The source of a derivative from its path, by the AIP layout's rule
    (``data/preservation/<path>.<ext>`` and ``data/access/<path>.<ext>`` are made from
    ``data/objects/<path>``); None for any other file.

    >>> derived_source("versions/v2-0a1b/data/preservation/户卷/a.doc.pdf")
    'data/objects/户卷/a.doc'
    >>> derived_source("data/objects/户卷/a.doc") is None
    True
    """
    match = _FOLDER.match(stored)
    rest = stored[match.end():] if match else stored
    for folder in ("data/preservation/", "data/access/"):
        if rest.startswith(folder) and "." in rest[len(folder):].rsplit("/", 1)[-1]:
            return "data/objects/" + rest[len(folder):].rsplit(".", 1)[0]
    return None


def record_version(session: Any, inventory: Inventory, new_objects: Mapping[str, Any]) -> None:
    """Catalogue one committed version: its row, its logical files, and the File rows of
    the objects it stored (each object once, whatever the versions that use it)."""
    from sqlalchemy import func, insert, select

    from storage.catalogue import models as m

    if session.scalar(select(func.count()).select_from(m.AipVersion).where(
            m.AipVersion.aip_uuid == inventory.aip,
            m.AipVersion.number == inventory.number)):
        raise StorageError(f"AIP {inventory.aip}: version {inventory.number} is already "
                           "catalogued")
    present = set(session.scalars(select(m.File.path).where(m.File.aip_uuid == inventory.aip)))
    rows = []
    for index, (path, e) in enumerate(sorted(new_objects.items()), 1):
        if path in present:
            continue
        rows.append(dict(aip_uuid=inventory.aip, key=f"v{inventory.number}-{index:06d}",
                         path=path, original_name=path.rsplit("/", 1)[-1], size=e.size,
                         sha256=e.digests["sha256"], digests=dict(e.digests),
                         mime=None, puid=None, format_name=None, format_version=None,
                         use=object_use(path), item_key=None,
                         derived_from=derived_source(path)))
    if rows:
        session.execute(insert(m.File), rows)
    changes = inventory.changes
    changed = set(changes.get("added", [])) | set(changes.get("replaced", []))
    session.add(m.AipVersion(
        aip_uuid=inventory.aip, number=inventory.number,
        created_at=datetime.fromisoformat(inventory.created), agent=inventory.agent,
        reason=inventory.reason, kind=inventory.kind, supersedes=inventory.supersedes,
        inventory=inventory.path, changes=changes, file_count=len(inventory.files),
        bytes_added=sum(e.size for e in new_objects.values())))
    session.execute(insert(m.AipVersionFile), [
        dict(aip_uuid=inventory.aip, version=inventory.number, path=p, stored_path=f["stored"],
             sha256=f["digests"]["sha256"], size=int(f["size"]),
             change=("replaced" if p in set(changes.get("replaced", [])) else
                     "added" if p in changed else "unchanged"))
        for p, f in sorted(inventory.files.items())])


def catalogue_version(catalogue: Any, session: Any, inventory: Inventory, description: Any,
                      record: dict[str, Any], new_objects: Mapping[str, Any],
                      documents: Iterable[Any], protected: Iterable[Any] = ()) -> None:
    """Everything the catalogue keeps of a committed version, in the caller's transaction:
    the version and its files (:func:`record_version`), and the AIP's row, items, events,
    encrypted values and search documents following its METS (``description`` and
    ``record`` PII-protected, ``protected`` their encrypted values)."""
    from sqlalchemy import delete

    from storage.catalogue import PiiValue, store_protected

    record_version(session, inventory, new_objects)
    _formats_of_new_objects(session, inventory, description, new_objects)
    session.execute(delete(PiiValue).where(PiiValue.aip_uuid == inventory.aip))
    store_protected(session, inventory.aip, protected)
    catalogue.update_aip(session, description, record=record, documents=documents,
                         bytes_added=sum(e.size for e in new_objects.values()),
                         file_count=len(inventory.files))
    catalogue.append_audit(session, inventory.agent, "aip-version", inventory.aip, {
        "version": inventory.number, "supersedes": inventory.supersedes,
        "kind": inventory.kind, "reason": inventory.reason, "changes": inventory.changes,
        "inventory": inventory.path})


def _formats_of_new_objects(session: Any, inventory: Inventory, description: Any,
                            new_objects: Mapping[str, Any]) -> None:
    """The identified format (MIME type, PUID, name, version) of each object the version
    stored, from its METS entry: a file added by an update, or a derivative made by a
    migration, is catalogued with its format as an ingested file is (and a derivative with
    the logical path of its source where the catalogue records it)."""
    from sqlalchemy import update

    from storage.catalogue import models as m

    stored_of = {path: entry["stored"] for path, entry in inventory.files.items()}
    for entry in description.files:
        stored = stored_of.get(entry.path)
        if stored is None or stored not in new_objects:
            continue
        values = {"mime": entry.mime, "puid": entry.puid, "format_name": entry.format_name,
                  "format_version": entry.format_version}
        if entry.derived_from:
            values["derived_from"] = entry.derived_from
        if any(v is not None for v in values.values()):
            session.execute(update(m.File).where(m.File.aip_uuid == inventory.aip,
                                                 m.File.path == stored).values(**values))


def version_objects(inventory: Inventory) -> dict[str, Any]:
    """Stored path -> ExpectedFile of the objects an inventory's version wrote itself (under
    its own folder), the inventory not included."""
    from storage.locations import ExpectedFile

    assert inventory.path is not None
    folder = inventory.path[: -len(INVENTORY)]
    return {f["stored"]: ExpectedFile(int(f["size"]), dict(f["digests"]))
            for f in inventory.files.values() if f["stored"].startswith(folder)}


def materialise(inventory: Inventory, fetch: Callable[[str, str, Path], None], out: Path) -> int:
    """Write every logical file of a version into ``out`` (a bag), each through
    ``fetch(stored_path, logical_path, target)`` (which verifies it); return the count."""
    for logical, entry in sorted(inventory.files.items()):
        target = out / logical
        if out.resolve() not in target.resolve().parents:
            raise StorageError(f"AIP {inventory.aip}: unsafe path {logical!r}")
        target.parent.mkdir(parents=True, exist_ok=True)
        fetch(entry["stored"], logical, target)
    return len(inventory.files)


def now() -> str:
    """The current time as versions record it."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
