"""Rebuild the catalogue — and with it the search index — from the AIPs in one storage location.

Storage is the system of record: every AIP carries its METS (items, files, formats, PREMIS
events, agents, retention), its profile record, its ingest report (the transfer it came from)
and its extracted text. :class:`Rebuilder` reads them back and catalogues each AIP as ingest
did, one transaction per AIP (so a rebuild that stops part-way resumes by skipping what is
there): the same rows, the same PII protection (ID numbers encrypted and masked), the same 档号
register and the same search documents (made by ingest's own code, reached through the
``dangan.rebuild`` entry point), written with their embedded-index tokens and, on an external
engine, their indexing outbox entries.

:func:`compare_catalogues` then lists every difference between the rebuilt catalogue and the
existing one: AIPs only in one of them, and per AIP its fields, files, items, documents and
copies. What happened after ingest (fixity checks, repairs, replications) lives only in the
catalogue and is reported as events the AIPs cannot hold, not as a difference.
"""

from __future__ import annotations

import json
import re
import uuid as uuidlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update

from metadata_profiles import ProfileError, load_profile
from policies import (
    ConfigError,
    Settings,
    StorageError,
    load_fixity_policy,
    load_storage_policy,
)
from storage.catalogue import models as m
from storage.catalogue.database import Catalogue, SearchDocument
from storage.aip import digest_stream, read_chunks
from storage.locations import ExpectedFile, Location, Mismatch, open_location
from storage.locations import read_manifest
from storage.aip import AipDescription, is_version_object, parse_mets

METS = "data/metadata/mets.xml"
RECORD = "data/metadata/record.json"
REPORT = "data/logs/ingest-report.json"
TEXTS = "data/metadata/text/"
_MANIFEST = re.compile(r"^(tag)?manifest-([a-z0-9]+)\.txt$")
_TRANSFER_EVENT = re.compile(r"transfer ([0-9a-f-]{36})")
_CREATED = re.compile(r'CREATEDATE="([^"]+)"')

DocumentsFn = Callable[[AipDescription, dict[str, str], Path | None], list[SearchDocument]]
ProgressFn = Callable[[str, int, int], None]


def documents_plugin() -> DocumentsFn:
    """The function that makes an AIP's search documents (entry point ``dangan.rebuild``).

    Raises:
        ConfigError: no package provides it (the ingest package is not installed).
    """
    for ep in entry_points(group="dangan.rebuild"):
        if ep.name == "documents":
            return ep.load()
    raise ConfigError("no dangan.rebuild 'documents' entry point: reinstall Dangan")


@dataclass
class StoredAip:
    """What one AIP in storage says about itself."""

    description: AipDescription
    record: dict[str, Any]
    report: dict[str, Any] | None
    files: dict[str, ExpectedFile]          # every bag file: size and manifest digests
    texts: dict[str, str]
    problems: list[Mismatch] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(e.size for e in self.files.values())


def _read(location: Location, uuid: str, path: str) -> bytes:
    with location.open(uuid, path) as stream:
        return stream.read()


def read_stored_aip(location: Location, uuid: str, *, verify: bool = False,
                    algorithms: tuple[str, ...] = ("sha256",)) -> StoredAip:
    """Read an AIP's own account of itself from a location.

    Every file listed must be in a manifest and every manifest entry must be stored; the METS
    digests must agree with the manifests. With ``verify`` every byte is re-read and hashed too.

    Raises:
        StorageError: the location fails.
        ValueError: ``mets.xml`` is missing, unreadable or names another AIP.
    """
    # version 1 is what the top-level manifests describe; later versions (storage/aip/versions)
    # are read from their inventories by Rebuilder._versions
    listing = {info.path: info for info in location.list_files(uuid)
               if not is_version_object(info.path)}
    if METS not in listing:
        raise ValueError(f"AIP {uuid}: no {METS}")
    description = parse_mets(_read(location, uuid, METS))
    if description.uuid != uuid:
        raise ValueError(f"AIP {uuid}: mets.xml describes {description.uuid}")
    record = json.loads(_read(location, uuid, RECORD)) if RECORD in listing else {}
    report = json.loads(_read(location, uuid, REPORT)) if REPORT in listing else None
    digests: dict[str, dict[str, str]] = {}
    tag_manifests = []
    for path in listing:
        found = _MANIFEST.match(path)
        if found:
            if found.group(1):
                tag_manifests.append(path)
            for listed, digest in read_manifest(location, uuid, path).items():
                digests.setdefault(listed, {})[found.group(2)] = digest
    for path in tag_manifests:  # listed in no manifest: hash them here (they are small)
        with location.open(uuid, path) as stream:
            _size, found_digests = digest_stream(read_chunks(stream), ("sha256",))
        digests.setdefault(path, {}).update(found_digests)
    files = {path: ExpectedFile(info.size, digests.get(path, {})) for path, info in listing.items()}
    problems = [Mismatch("missing", p) for p in sorted(set(digests) - set(listing))]
    problems += [Mismatch("untracked", p) for p in sorted(p for p in listing if p not in digests)]
    for entry in description.files:
        listed = digests.get(entry.path, {}).get("sha256")
        if listed and listed != entry.digests.get("sha256"):
            problems.append(Mismatch("changed", entry.path, "sha256",
                                     entry.digests.get("sha256", ""), listed))
    if verify:
        problems += location.verify_aip(uuid, {p: e for p, e in files.items() if e.digests},
                                        algorithms)
    texts = {p: _read(location, uuid, p).decode("utf-8") for p in sorted(listing)
             if p.startswith(TEXTS) and p.endswith(".txt")}
    return StoredAip(description, record, report, files, texts, problems)


@dataclass
class Difference:
    """One way in which the rebuilt catalogue differs from the existing one."""

    aip: str
    kind: str   # only-in-catalogue | only-in-storage | aip | files | items | documents | copies
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"aip": self.aip, "kind": self.kind, "detail": self.detail}


@dataclass
class RebuildReport:
    """What a rebuild found and did."""

    location: str
    target: str
    found: int = 0
    rebuilt: int = 0
    skipped: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    damaged: dict[str, list[str]] = field(default_factory=dict)
    compared_with: str | None = None
    differences: list[Difference] = field(default_factory=list)
    later_events: int = 0
    tombstones: int = 0          # tombstones of destroyed AIPs put back
    not_rebuilt: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when every AIP was catalogued intact and nothing differs, else 1."""
        return 1 if self.failed or self.damaged or self.differences else 0

    def to_dict(self) -> dict[str, Any]:
        return {"location": self.location, "target": self.target, "found": self.found,
                "rebuilt": self.rebuilt, "skipped": self.skipped, "failed": self.failed,
                "damaged": self.damaged, "compared_with": self.compared_with,
                "differences": [d.to_dict() for d in self.differences],
                "events_recorded_after_ingest": self.later_events,
                "not_rebuilt": self.not_rebuilt, "exit_code": self.exit_code}


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


class Rebuilder:
    """Catalogues the AIPs of one location into a target catalogue.

    Arguments:
        settings: the home's settings (storage policy, profiles, PII key).
        source: the location read.
        target: the catalogue written (empty, or partly rebuilt: present AIPs are skipped).
        verify: re-read every byte of every AIP (default: listings and manifests only).
        documents: the search-document maker (default: the ``dangan.rebuild`` plug-in).
    """

    def __init__(self, settings: Settings, source: Location, target: Catalogue, *,
                 verify: bool = False, documents: DocumentsFn | None = None) -> None:
        from storage.catalogue.pii import PiiVault

        self.settings = settings
        self.source = source
        self.target = target
        self.verify = verify
        self.documents = documents or documents_plugin()
        self.algorithms = load_fixity_policy(settings).algorithms
        self.vault = PiiVault.from_settings(settings)
        policy = load_storage_policy(settings)
        self.others = [open_location(spec) for spec in policy.locations
                       if spec.name != source.name and spec.url != source.url]

    def run(self, progress: ProgressFn | None = None) -> RebuildReport:
        """Rebuild every AIP of the source that the target lacks."""
        report = RebuildReport(self.source.name, self.target.url,
                               not_rebuilt=["WORM lock records (the locks stay on the stored "
                                            "objects)", "events recorded after ingest"])
        uuids = self._ingest_order(list(self.source.list_aips()))
        report.found = len(uuids)
        with self.target.session() as s:
            present = set(s.scalars(select(m.Aip.uuid)))
        remaining = set(uuids)
        done = 0
        for first in uuids:
            if first not in remaining:
                continue
            for uuid in self._transfer_group(first, remaining):
                remaining.discard(uuid)
                done += 1
                if progress:
                    progress(uuid, done, len(uuids))
                if uuid in present:
                    report.skipped += 1
                    continue
                self._rebuild_one(uuid, report)
        from storage.appraisal import restore_tombstones

        report.tombstones = restore_tombstones(self.source, self.target)
        self.target.audit("rebuild", "catalogue-rebuilt", self.source.url,
                          {"found": report.found, "rebuilt": report.rebuilt,
                           "failed": sorted(report.failed), "damaged": sorted(report.damaged)})
        return report

    # -- order ---------------------------------------------------------------------------
    def _ingest_order(self, uuids: list[str]) -> list[str]:
        """AIPs in the order they were made (the METS creation time, read from the header
        alone), so that the rebuilt catalogue lists them as the original did."""
        def created(uuid: str) -> str:
            try:
                with self.source.open(uuid, METS, 0, 4096) as stream:
                    head = stream.read().decode("utf-8", "replace")
            except StorageError:
                return ""
            found = _CREATED.search(head)
            return found.group(1) if found else ""

        when = {uuid: created(uuid) for uuid in uuids}
        return sorted(uuids, key=lambda u: (when[u], u))

    def _transfer_group(self, first: str, remaining: set[str]) -> list[str]:
        """``first`` and the other AIPs of its transfer here, in the transfer's unit order
        (the order ingest catalogued them in), as its ingest report lists them."""
        try:
            report = json.loads(_read(self.source, first, REPORT))
        except (StorageError, ValueError):
            return [first]
        units = [u.get("aip_uuid") for u in report.get("units") or []]
        group = [u for u in units if u in remaining]
        return group if first in group else [first, *group]

    def _rebuild_one(self, uuid: str, report: RebuildReport) -> None:
        try:
            stored = read_stored_aip(self.source, uuid, verify=self.verify,
                                     algorithms=self.algorithms)
            self.catalogue_aip(stored)
        except (StorageError, ValueError, KeyError) as exc:
            report.failed[uuid] = f"{type(exc).__name__}: {exc}"
            return
        if stored.problems:
            report.damaged[uuid] = [f"{p.kind} {p.path}" for p in stored.problems]
        report.rebuilt += 1

    # -- one AIP -------------------------------------------------------------------------
    def catalogue_aip(self, stored: StoredAip) -> None:
        """Catalogue one AIP as ingest does, in one transaction."""
        from storage.catalogue.archival_codes import CodeRegistry
        from storage.catalogue.pii import protect_description, store_protected

        desc = stored.description
        transfer = self._transfer(stored)
        documents = self.documents(desc, stored.texts, self.settings.home)
        masked, record, protected = protect_description(desc, stored.record,
                                                        self._protected_fields(desc), self.vault)
        registry = CodeRegistry(self.target)
        codes = self._claim_codes(registry, desc, transfer["fingerprint"])
        described = {f.path for f in desc.files}
        others = {p: e for p, e in stored.files.items() if p not in described}
        copies = self._copies(desc.uuid, stored)
        with self.target.session() as s:
            self._ensure_transfer(self.target, s, transfer, desc)
            self.target.add_aip(s, masked, transfer_id=transfer["id"], size=stored.size,
                                copies=copies, documents=documents, record=record,
                                other_files=others, actor="rebuild")
            store_protected(s, desc.uuid, protected)
            if codes:
                registry.assign(s, transfer["fingerprint"], codes)
            s.flush()
            self._copy_states(s, desc.uuid, stored)
        self._versions(desc.uuid)

    def _versions(self, uuid: str) -> None:
        """The later versions of an AIP, from their inventories, each as an update would
        have catalogued it (one transaction each, oldest first)."""
        from storage.aip import catalogue_version, committed_inventories, version_objects
        from storage.catalogue.pii import protect_description

        for inventory in committed_inventories(self.source, uuid):
            objects = version_objects(inventory)
            info = self.source.head(uuid, inventory.path)
            with self.source.open(uuid, inventory.path) as stream:
                objects[inventory.path] = ExpectedFile(
                    info.size, digest_stream(read_chunks(stream), ("sha256",))[1])
            desc = parse_mets(_read(self.source, uuid, inventory.stored(METS)))
            record = json.loads(_read(self.source, uuid, inventory.stored(RECORD))) \
                if RECORD in inventory.files else {}
            texts = {p: _read(self.source, uuid, f["stored"]).decode("utf-8")
                     for p, f in inventory.files.items()
                     if p.startswith(TEXTS) and p.endswith(".txt")}
            documents = self.documents(desc, texts, self.settings.home)
            masked, record, protected = protect_description(
                desc, record, self._protected_fields(desc), self.vault)
            with self.target.session() as s:
                catalogue_version(self.target, s, inventory, masked, record, objects,
                                  documents, protected)

    def _protected_fields(self, desc: AipDescription) -> tuple[str, ...]:
        if not desc.profile:
            return ()
        try:
            return load_profile(desc.profile, self.settings.home).protected_fields
        except ProfileError as exc:
            raise ValueError(f"AIP {desc.uuid}: profile {desc.profile}: {exc}") from exc

    def _claim_codes(self, registry: Any, desc: AipDescription,
                     fingerprint: str) -> dict[str, str]:
        """Register the AIP's 档号 for its transfer (assigned in the AIP's transaction)."""
        from metadata_profiles.archival_code import parse_code
        from storage.catalogue.archival_codes import CodeClaim

        try:
            profile = load_profile(desc.profile, self.settings.home) if desc.profile else None
        except ProfileError:
            profile = None
        rules = getattr(profile, "codes", None)
        if rules is None:
            return {}
        claims = {}
        for item in desc.items:
            text = item.fields.get("archival_code")
            parsed = parse_code(str(text), rules, profile.normalise) if text else None
            if parsed is not None:
                claims[parsed.text] = CodeClaim(parsed.text, parsed.bucket, parsed.number,
                                                parsed.width, parsed.level)
        if not claims:
            return {}
        result = registry.claim(fingerprint, claims.values())
        if result.conflicts:
            held = ", ".join(f"{c} by {w}" for c, w in sorted(result.conflicts.items()))
            raise ValueError(f"AIP {desc.uuid}: 档号 already held: {held}")
        return {code: desc.uuid for code in claims}

    def _transfer(self, stored: StoredAip) -> dict[str, Any]:
        """The transfer the AIP came from, as its ingest report (or ingestion event) says."""
        info = dict((stored.report or {}).get("transfer") or {})
        if not info.get("id"):
            for event in stored.description.events:
                found = _TRANSFER_EVENT.search(event.detail) if event.type == "ingestion" else None
                if found:
                    info["id"] = found.group(1)
                    break
        uuid = stored.description.uuid
        info.setdefault("id", str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"dangan:aip:{uuid}")))
        info.setdefault("fingerprint", f"rebuilt:{info['id']}")
        info["units"] = (stored.report or {}).get("units") or []
        info["counts"] = (stored.report or {}).get("counts") or {}
        info["generated"] = (stored.report or {}).get("generated")
        info["report_url"] = self.source.url_for(uuid, REPORT)
        return info

    @staticmethod
    def _ensure_transfer(catalogue: Catalogue, s: Any, info: dict[str, Any],
                         desc: AipDescription) -> None:
        if s.get(m.Transfer, info["id"]) is not None:
            return
        received = _parse_time(info.get("received")) or datetime.fromisoformat(desc.created)
        s.add(m.Transfer(
            id=info["id"], fingerprint=info["fingerprint"], source=str(info.get("source", "")),
            profile=str(info.get("profile") or desc.profile or ""), status="accepted",
            received_at=received, finished_at=_parse_time(info.get("generated")) or received,
            report_path=info["report_url"], summary=info["counts"],
            plan={u["key"]: u["aip_uuid"] for u in info["units"] if u.get("aip_uuid")}))
        s.flush()
        # every accepted transfer has its entry in the audit log (storage.auditlog.FACTS)
        catalogue.append_audit(s, "rebuild", "transfer-accepted", info["id"],
                               {"rebuilt_from": info["report_url"]})

    def _copies(self, uuid: str, stored: StoredAip) -> list[Any]:
        from storage.locations import CopyReport

        now = _now().isoformat()
        copies = [CopyReport(self.source.name, self.source.url_for(uuid),
                             files=len(stored.files), bytes=stored.size, finished=now)]
        for other in self.others:
            try:
                if other.has_aip(uuid):
                    copies.append(CopyReport(other.name, other.url_for(uuid),
                                             files=len(stored.files), bytes=stored.size,
                                             finished=now))
            except StorageError:
                continue
        return copies

    def _copy_states(self, s: Any, uuid: str, stored: StoredAip) -> None:
        """A copy is verified only when its bytes were read now; a damaged one says so."""
        status = "damaged" if stored.problems else "verified"
        s.execute(update(m.Copy).where(m.Copy.aip_uuid == uuid, m.Copy.location == self.source.name)
                  .values(status=status, verified_at=_now() if self.verify and not stored.problems
                          else None))
        s.execute(update(m.Copy).where(m.Copy.aip_uuid == uuid,
                                       m.Copy.location != self.source.name)
                  .values(verified_at=None))


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


# -- comparing two catalogues ----------------------------------------------------------------

AIP_FIELDS = ("archival_code", "label", "status", "profile", "size", "file_count",
              "retention_period", "expiry_date", "open_date", "control_id", "pii_level")


def _batches(items: list[str], size: int = 500) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _by_aip(s: Any, model: Any, uuids: list[str], key: Callable[[Any], Any],
            value: Callable[[Any], Any]) -> dict[str, dict[Any, Any]]:
    out: dict[str, dict[Any, Any]] = {u: {} for u in uuids}
    for row in s.scalars(select(model).where(model.aip_uuid.in_(uuids))):
        out[row.aip_uuid][key(row)] = value(row)
    return out


def _snapshot(catalogue: Catalogue, uuids: list[str]) -> dict[str, dict[str, Any]]:
    with catalogue.session() as s:
        aips = {a.uuid: {f: _plain(getattr(a, f, None)) for f in AIP_FIELDS}
                for a in s.scalars(select(m.Aip).where(m.Aip.uuid.in_(uuids)))}
        files = _by_aip(s, m.File, uuids, lambda r: r.path, lambda r: (r.size, r.sha256))
        items = _by_aip(s, m.Item, uuids, lambda r: r.key,
                        lambda r: (r.title, r.level, r.parent_key, json.dumps(r.fields,
                                                                             sort_keys=True)))
        docs = _by_aip(s, m.SearchDoc, uuids, lambda r: r.item_key or "",
                       lambda r: (r.title, r.archival_code, r.text,
                                  json.dumps(r.facets, sort_keys=True)))
        copies = _by_aip(s, m.Copy, uuids, lambda r: r.location, lambda r: r.url)
        events = _by_aip(s, m.Event, uuids, lambda r: r.id, lambda r: r.type)
    return {u: {"aip": aips.get(u), "files": files[u], "items": items[u], "documents": docs[u],
                "copies": copies[u], "events": events[u]} for u in uuids}


def _plain(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _differ(a: dict[Any, Any], b: dict[Any, Any]) -> str:
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    changed = sorted(k for k in set(a) & set(b) if a[k] != b[k])
    parts = []
    if only_a:
        parts.append(f"only in the catalogue: {', '.join(map(str, only_a[:5]))}"
                     + (f" (+{len(only_a) - 5})" if len(only_a) > 5 else ""))
    if only_b:
        parts.append(f"only in storage: {', '.join(map(str, only_b[:5]))}"
                     + (f" (+{len(only_b) - 5})" if len(only_b) > 5 else ""))
    if changed:
        parts.append(f"different: {', '.join(map(str, changed[:5]))}"
                     + (f" (+{len(changed) - 5})" if len(changed) > 5 else ""))
    return "; ".join(parts)


def compare_catalogues(existing: Catalogue, rebuilt: Catalogue,
                       report: RebuildReport) -> None:
    """Add to ``report`` every difference between the existing and the rebuilt catalogue."""
    with existing.session() as s:
        old = set(s.scalars(select(m.Aip.uuid)))
    with rebuilt.session() as s:
        new = set(s.scalars(select(m.Aip.uuid)))
    report.compared_with = existing.url
    report.differences += [Difference(u, "only-in-catalogue", "catalogued but not stored at "
                                      f"{report.location}") for u in sorted(old - new)]
    report.differences += [Difference(u, "only-in-storage", f"stored at {report.location} but "
                                      "not catalogued") for u in sorted(new - old)]
    for batch in _batches(sorted(old & new)):
        before, after = _snapshot(existing, batch), _snapshot(rebuilt, batch)
        for uuid in batch:
            a, b = before[uuid], after[uuid]
            fields = _differ(a["aip"], b["aip"])
            if fields:
                report.differences.append(Difference(uuid, "aip", fields))
            for part in ("files", "items", "documents", "copies"):
                text = _differ(a[part], b[part])
                if text:
                    report.differences.append(Difference(uuid, part, text))
            report.later_events += len(set(a["events"]) - set(b["events"]))


def count_aips(catalogue: Catalogue) -> int:
    """AIPs in a catalogue, whatever their status."""
    with catalogue.session() as s:
        return int(s.scalar(select(func.count()).select_from(m.Aip)) or 0)


def rebuild_catalogue(settings: Settings, source: Location, target: Catalogue,
            existing: Catalogue | None = None, *, verify: bool = False,
            progress: ProgressFn | None = None) -> RebuildReport:
    """Rebuild ``target`` from ``source`` and compare it with ``existing`` when given."""
    report = Rebuilder(settings, source, target, verify=verify).run(progress)
    if existing is not None:
        compare_catalogues(existing, target, report)
    return report


def source_location(settings: Settings, name_or_url: str) -> Location:
    """A location by its storage-policy name, or by URL.

    Raises:
        ConfigError: neither a policy location nor a URL Dangan can open.
    """
    from policies.loader import LocationSpec

    policy = load_storage_policy(settings)
    for spec in policy.locations:
        if spec.name == name_or_url:
            return open_location(spec)
    if "://" in name_or_url:
        return open_location(LocationSpec("rebuild-source", name_or_url))
    names = ", ".join(s.name for s in policy.locations)
    raise ConfigError(f"no storage location {name_or_url!r} (the policy has: {names}; "
                      "or give a file:// or s3:// URL)")


__all__ = ["Difference", "RebuildReport", "Rebuilder", "StoredAip", "compare_catalogues",
           "count_aips", "documents_plugin", "read_stored_aip", "rebuild_catalogue", "source_location"]
