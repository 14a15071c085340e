"""A retention changed by appraisal (延长保管期限, 转为永久): a new AIP version and a new lock.

An AIP never changes in place, so the committee's decision to extend a 保管期限 or to keep a
record permanently is written as version N+1 of the AIP: its METS carries the new retention
(``premis:rightsStatement`` / the dangan retention block), the appraisal events of the batch
(proposed, approved, the change itself) as PREMIS events, and its record.json the new period
on every item; only those metadata files and the bag's tag files are new, every payload object
stays where it is. Then every object of every copy is locked again (S3 Object Lock retention
extended, or a legal hold for a permanent record): the "re-lock" of the copies, so that the
storage itself keeps refusing deletion for the new period.

A run killed after the version was committed in storage but before the catalogue knew of it
is adopted by the next run (same request fingerprint), never written twice.
"""

from __future__ import annotations

import json
import tempfile
import uuid as uuidlib
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import select

from policies import Settings
from storage.catalogue import Catalogue, models as m
from storage.index import outbox

METS = "data/metadata/mets.xml"
RECORD = "data/metadata/record.json"


def _crash(name: str) -> None:
    """Fault injection: ``DANGAN_CRASH_AT=NAME`` kills the process here (the tests)."""
    from storage.locations import crash_point

    crash_point(name)


def _manifest_line(digest: str, path: str) -> str:
    # BagIt 1.0 §2.1.3: only CR, LF and % are percent-encoded in manifest paths
    escaped = path.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return f"{digest}  {escaped}\n"


def retention_version(settings: Settings, catalogue: Catalogue, aip_uuid: str, *, period: str,
                      expiry: date | None, reason: str, actor: str, batch: str,
                      detail: str) -> dict[str, Any]:
    """Write version N+1 of ``aip_uuid`` with 保管期限 ``period`` (``expiry`` its last day,
    None for 永久) at every location holding a copy, re-lock every object of each copy for
    the new period, and catalogue it all; return {"version", "locks"}."""
    from policies import load_storage_policy
    from storage.aip import (AipDescription, Event, Inventory, Retention, build_mets,
                             committed_inventories, hash_file, inventory_of, new_attempt,
                             parse_mets, publish_version, record_version, request_fingerprint,
                             version_folder, version_objects)
    from storage.copies import (LocationSet, Retriever, WormSettings, apply_lock, lock_for,
                                record_locks)
    from storage.locations import ExpectedFile

    request = request_fingerprint(f"appraisal {batch}: {period} {expiry}: {reason}", [])
    sets = LocationSet(load_storage_policy(settings), settings)
    names = sorted({c.location for c in catalogue.copies_of(aip_uuid)})
    locations = [sets.get(n) for n in names]
    worm = WormSettings.from_settings(settings)
    lock = lock_for(period, expiry, worm)
    with catalogue.session() as s:
        previous = inventory_of(s, aip_uuid)
        events = [(e.id, e.type, e.at, e.outcome, e.detail) for e in s.scalars(
            select(m.Event).where(m.Event.aip_uuid == aip_uuid, m.Event.type == "appraisal")
            .order_by(m.Event.at))]
    adopted = _committed(locations, aip_uuid, previous.number, request, committed_inventories)
    with tempfile.TemporaryDirectory(prefix="dangan-relock-",
                                     dir=settings.staging if settings.staging.exists()
                                     else None) as scratch:
        root = Path(scratch)
        if adopted is not None:
            inventory = adopted
            objects = version_objects(inventory)
        else:
            retriever = Retriever(settings, catalogue)

            def read(stored: str) -> bytes:
                return b"".join(retriever.stream(retriever.file(aip_uuid, stored)))

            number = previous.number + 1
            folder_name = version_folder(number, new_attempt())
            old = parse_mets(read(previous.stored(METS)))
            record = json.loads(read(previous.stored(RECORD))) \
                if RECORD in previous.files else {}
            algorithms = sorted(previous.files[METS]["digests"])
            for item in record.get("items", []):
                fields = item.get("fields") or {}
                if "retention_period" in fields:
                    fields["retention_period"] = period
            record["version"] = number
            expiry_iso = expiry.isoformat() if expiry else None
            retention = Retention(period, expiry_iso,
                                  old.retention.open_date if old.retention else None,
                                  f"鉴定批次 {batch}: {reason}")
            known = {e.id for e in old.events}
            carried = [Event(eid, kind, at.isoformat(), outcome, text, "", (), ())
                       for eid, kind, at, outcome, text in events if eid not in known]
            created = _now()
            change = Event(str(uuidlib.uuid4()), "modification", created, "pass",
                           f"version {number} supersedes version {previous.number}: {detail}",
                           json.dumps({"supersedes": previous.number, "batch": batch,
                                       "retention": {"period": period, "expiry": expiry_iso}},
                                      ensure_ascii=False, sort_keys=True),
                           (old.creator_agent_id,), ())
            items = tuple(replace(i, fields={**i.fields, "retention_period": period})
                          if "retention_period" in i.fields else i for i in old.items)
            files = {p: dict(f) for p, f in previous.files.items()}
            objects: dict[str, Any] = {}

            def stage(path: str, data: bytes) -> tuple[int, dict[str, str]]:
                target = root / folder_name / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                size, found = hash_file(target, algorithms)
                objects[f"{folder_name}{path}"] = ExpectedFile(size, found)
                files[path] = {"size": size, "digests": found,
                               "stored": f"{folder_name}{path}"}
                return size, found

            record_bytes = json.dumps(record, ensure_ascii=False, indent=2,
                                      sort_keys=True).encode("utf-8")
            size, found = stage(RECORD, record_bytes)
            entries = tuple(replace(e, size=size, digests=found) if e.path == RECORD else e
                            for e in old.files)
            description = AipDescription(
                uuid=old.uuid, archival_code=old.archival_code, label=old.label,
                created=created, creator_agent_id=old.creator_agent_id,
                source_organization=old.source_organization, files=entries, items=items,
                events=(*old.events, *carried, change), agents=old.agents,
                retention=retention, profile=old.profile)
            stage(METS, build_mets(description))
            # the tag files of the version's whole bag: manifests, bag-info (its Oxum)
            payload = {p: f for p, f in files.items() if p.startswith("data/")}
            for algorithm in algorithms:
                stage(f"manifest-{algorithm}.txt", "".join(
                    _manifest_line(payload[p]["digests"][algorithm], p)
                    for p in sorted(payload)).encode("utf-8"))
            info = read(previous.stored("bag-info.txt")).decode("utf-8").splitlines()
            oxum = f"{sum(int(f['size']) for f in payload.values())}.{len(payload)}"
            info = [f"Payload-Oxum: {oxum}" if line.startswith("Payload-Oxum:") else
                    f"Bagging-Date: {created[:10]}" if line.startswith("Bagging-Date:") else
                    line for line in info]
            stage("bag-info.txt", ("\n".join(info) + "\n").encode("utf-8"))
            tags = sorted(p for p in files if "/" not in p and not p.startswith("tagmanifest-"))
            for algorithm in algorithms:
                stage(f"tagmanifest-{algorithm}.txt", "".join(
                    _manifest_line(files[p]["digests"][algorithm], p)
                    for p in tags).encode("utf-8"))
            inventory = Inventory(aip_uuid, number, previous.number, created, actor,
                                  f"鉴定批次 {batch}: {reason}", "modification", files,
                                  {"added": [], "replaced": [], "withdrawn": [],
                                   "records": [{"retention_period": period,
                                                "expiry": expiry_iso, "batch": batch}]},
                                  dict(previous.withdrawn), request,
                                  f"{folder_name}inventory.json")
            _crash("relock-built")
            publish_version(locations, aip_uuid, root, objects, inventory, lock=lock,
                            crash=_crash)
            objects[inventory.path] = ExpectedFile(
                *hash_file(root / inventory.path, ["sha256"]))
        _crash("relock-stored")
        # every object of every copy locked for the new period (retention never shortened:
        # the server refuses that in COMPLIANCE mode, and a longer period is asked here)
        applied = [apply_lock(location, aip_uuid, lock) for location in locations]
        _crash("relock-locked")
        if adopted is not None and inventory.path not in objects:
            objects[inventory.path] = ExpectedFile(
                *_inventory_digest(locations[0], aip_uuid, inventory.path))
        with catalogue.session() as s:
            record_version(s, inventory, objects)
            aip = s.get(m.Aip, aip_uuid)
            aip.retention_period, aip.expiry_date = period, expiry
            aip.file_count = len(inventory.files)
            aip.size = aip.size + sum(e.size for e in objects.values())
            kept = dict(aip.record or {})
            if kept.get("items"):
                kept["items"] = [_with_period(i, period) for i in kept["items"]]
                kept["version"] = inventory.number
                aip.record = kept
            for row in s.scalars(select(m.Item).where(m.Item.aip_uuid == aip_uuid)):
                if "retention_period" in (row.fields or {}):
                    row.fields = {**row.fields, "retention_period": period}
            for doc in s.scalars(select(m.SearchDoc).where(m.SearchDoc.aip_uuid == aip_uuid)):
                if "retention" in (doc.facets or {}):
                    doc.facets = {**doc.facets, "retention": period}
            if catalogue.outbox:        # an external engine (Elasticsearch) indexes it anew
                outbox.enqueue(s, aip_uuid, "index")
            record_locks(s, aip_uuid, applied)
            catalogue.append_audit(s, actor, "aip-version", aip_uuid, {
                "version": inventory.number, "supersedes": inventory.supersedes,
                "kind": inventory.kind, "reason": inventory.reason,
                "changes": inventory.changes, "inventory": inventory.path})
            catalogue.append_audit(s, actor, "relock", aip_uuid, {
                "batch": batch, "locations": [a.location for a in applied if a],
                "enforced_by": {a.location: a.enforced_by for a in applied if a},
                "retain_until": lock.retain_until.isoformat()
                if lock is not None and lock.retain_until else None,
                "legal_hold": bool(lock and lock.legal_hold)})
    return {"version": inventory.number,
            "locks": {a.location: a.enforced_by for a in applied if a}}


def _with_period(item: dict[str, Any], period: str) -> dict[str, Any]:
    fields = item.get("fields") or {}
    if "retention_period" not in fields:
        return item
    return {**item, "fields": {**fields, "retention_period": period}}


def _committed(locations: list[Any], aip_uuid: str, number: int, request: str,
               committed: Any) -> Any:
    """The version an interrupted run of this very request committed in storage, or None."""
    for location in locations:
        for inventory in committed(location, aip_uuid):
            if inventory.number == number + 1 and inventory.request == request:
                return inventory
    return None


def _inventory_digest(location: Any, aip_uuid: str, path: str) -> tuple[int, dict[str, str]]:
    import hashlib

    with location.open(aip_uuid, path) as stream:
        data = stream.read()
    return len(data), {"sha256": hashlib.sha256(data).hexdigest()}


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")
