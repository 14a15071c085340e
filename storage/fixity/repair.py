"""Repairing a bad copy from copies that verify.

Each file the bad copy needs is fetched from another copy and verified against the
catalogue's digests (every algorithm) on the way into a staging folder; a source whose bytes
do not verify is skipped for the next. Only when *every* needed file has a verified source is
anything written: files are replaced one by one where the location can (each verified by
reading it back), otherwise the whole copy is rewritten. The repaired copy is then fully
re-checked, and the repair is recorded as its own PREMIS event (``replication``) and
audit-log entry. Files that do not belong in the copy are kept in
``$DANGAN_HOME/quarantine/<repair>/`` before they are removed.

If some file has no intact source, nothing is overwritten: the request is marked
``unrepairable``, the copy stays ``damaged`` and the AIP is reported loudly.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from policies.errors import StorageError, UsageError
from storage.catalogue import models as m
from storage.catalogue import utcnow
from storage.fixity.compare import Finding
from storage.fixity.models import RepairRequest
from storage.fixity.records import (
    CheckOutcome,
    as_utc,
    ensure_agents,
    expected_files,
    file_keys,
    precise_now,
)
from storage.locations import ExpectedFile, Location

if TYPE_CHECKING:
    from storage.fixity.audit import Auditor

REPLACE_KINDS = {"missing", "changed", "truncated", "tag-altered", "unreadable"}


@dataclass
class RepairResult:
    """What became of one repair request."""

    id: str
    aip_uuid: str
    location: str
    status: str                     # pending | done | failed | unrepairable | rejected
    replaced: dict[str, str] = field(default_factory=dict)   # path -> source location
    removed: list[str] = field(default_factory=list)
    unrepairable: list[str] = field(default_factory=list)
    detail: str = ""
    recheck: CheckOutcome | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {"repair": self.id, "aip": self.aip_uuid, "location": self.location,
                "status": self.status, "replaced": self.replaced, "removed": self.removed,
                "unrepairable": self.unrepairable, "detail": self.detail,
                "recheck": self.recheck.to_dict() if self.recheck else None}


class _NoSource(Exception):
    """Some files have no copy that verifies."""

    def __init__(self, paths: list[str]) -> None:
        super().__init__(", ".join(paths))
        self.paths = paths


class Repairer:
    """Applies the repair policy (``auto`` or ``approve``) to failed checks.

    Arguments:
        auditor: gives the catalogue, the locations and re-checks.
    """

    def __init__(self, auditor: Auditor) -> None:
        self.auditor = auditor
        self.catalogue = auditor.catalogue
        self.settings = auditor.settings

    def handle(self, failed: list[CheckOutcome], *, actor: str) -> list[RepairResult]:
        """Open a repair request per failed copy; carry it out now when the policy is auto."""
        results = []
        for check in failed:
            request_id = self.request(check, actor=actor)
            if self.auditor.policy.repair == "auto":
                results.append(self.execute(request_id, actor=actor))
            else:
                results.append(RepairResult(request_id, check.aip_uuid, check.location, "pending",
                                            detail="waits for `dangan repair approve "
                                                   f"{request_id}`"))
        return results

    def request(self, check: CheckOutcome, *, actor: str) -> str:
        """Record that a copy needs repair (one open request per copy); return its id."""
        with self.catalogue.session() as s:
            row = s.scalars(select(RepairRequest).where(
                RepairRequest.aip_uuid == check.aip_uuid, RepairRequest.location == check.location,
                RepairRequest.status == "pending")).first()
            if row is None:
                row = RepairRequest(id=str(uuidlib.uuid4()), aip_uuid=check.aip_uuid,
                                    location=check.location, status="pending",
                                    created_at=utcnow(), sources={}, detail="")
                s.add(row)
            row.check_id = check.id
            row.findings = [f.to_dict() for f in check.findings]
            self.catalogue.append_audit(s, actor, "repair-requested", check.aip_uuid, {
                "repair": row.id, "location": check.location, "check": check.id,
                "policy": self.auditor.policy.repair, "findings": len(check.findings)})
            return row.id

    def pending(self) -> list[RepairRequest]:
        """Open requests, oldest first."""
        with self.catalogue.session() as s:
            return list(s.scalars(select(RepairRequest).where(RepairRequest.status == "pending")
                                  .order_by(RepairRequest.created_at)))

    def reject(self, request_id: str, *, actor: str, reason: str = "") -> None:
        """Close a pending request without repairing (the copy stays damaged)."""
        with self.catalogue.session() as s:
            row = self._open_request(s, request_id)
            row.status, row.decided_by, row.decided_at = "rejected", actor, utcnow()
            row.detail = reason
            self.catalogue.append_audit(s, actor, "repair-rejected", row.aip_uuid,
                                        {"repair": row.id, "location": row.location,
                                         "reason": reason})

    def _open_request(self, s: Any, request_id: str) -> RepairRequest:
        row = s.get(RepairRequest, request_id)
        if row is None:
            matches = s.scalars(select(RepairRequest).where(
                RepairRequest.id.startswith(request_id))).all()
            row = matches[0] if len(matches) == 1 else None
        if row is None:
            raise UsageError(f"no repair request {request_id}")
        if row.status != "pending":
            raise UsageError(f"repair {row.id} is {row.status}, not pending")
        return row

    def execute(self, request_id: str, *, actor: str, approved_by: str | None = None) -> RepairResult:
        """Carry out a pending repair (after approval when the policy asks for one)."""
        with self.catalogue.session() as s:
            row = self._open_request(s, request_id)
            if approved_by:
                row.decided_by, row.decided_at = approved_by, utcnow()
                self.catalogue.append_audit(s, approved_by, "repair-approved", row.aip_uuid,
                                            {"repair": row.id, "location": row.location})
            request = RepairResult(row.id, row.aip_uuid, row.location, "pending")
            findings = [Finding.from_dict(f) for f in row.findings]
        staging = self.settings.staging / f"repair-{request.id}"
        try:
            self._repair(request, findings, staging)
        except _NoSource as exc:
            request.status, request.unrepairable = "unrepairable", exc.paths
            request.detail = (f"no copy that verifies holds {len(exc.paths)} file(s): "
                              f"{', '.join(exc.paths[:20])}; nothing was overwritten")
        except (StorageError, OSError) as exc:
            request.status = "failed"
            request.detail = f"{type(exc).__name__}: {exc}"
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if request.status == "pending":
            request.recheck = self.auditor.check_copy(request.aip_uuid, request.location, "full",
                                                      purpose="repair", actor=actor)
            request.status = "done" if request.recheck.passed else "failed"
            if not request.recheck.passed:
                request.detail += f"; the re-check failed: {request.recheck.note or ''}".rstrip()
        self._record(request, actor)
        return request

    # -- the work ---------------------------------------------------------------------------
    def _repair(self, request: RepairResult, findings: list[Finding], staging: Path) -> None:
        uuid = request.aip_uuid
        expected = expected_files(self.catalogue, uuid)
        target = self.auditor.location(request.location)
        whole = not target.has_aip(uuid)
        needed = sorted(expected) if whole else sorted(
            {f.path for f in findings if f.kind in REPLACE_KINDS and f.path in expected})
        extra = [] if whole else sorted({f.path for f in findings if f.kind == "untracked"})
        request.replaced = self._stage(uuid, needed, expected, request.location, staging)
        if whole:
            target.put_aip(uuid, staging, expected)
            request.detail = f"the whole copy was written again ({len(needed)} files)"
            return
        if not _replaces_files(target):
            self._rewrite_whole(request, expected, target, staging)
            return
        for path in needed:
            target.put_file(uuid, path, staging / path, expected[path])
        for path in extra:
            self._quarantine(target, uuid, path, request.id)
            target.delete_file(uuid, path)
            request.removed.append(path)
        request.detail = (f"{len(needed)} file(s) replaced from verified copies, "
                          f"{len(request.removed)} file(s) that do not belong removed")

    def _rewrite_whole(self, request: RepairResult, expected: dict[str, ExpectedFile],
                       target: Location, staging: Path) -> None:
        """For locations that cannot replace single files: stage all, delete, put again."""
        others = [p for p in sorted(expected) if p not in request.replaced]
        request.replaced.update(self._stage(request.aip_uuid, others, expected,
                                            request.location, staging))
        target.delete_aip(request.aip_uuid)
        target.put_aip(request.aip_uuid, staging, expected)
        request.detail = f"the whole copy was written again ({len(expected)} files)"

    def _sources(self, uuid: str, exclude: str) -> list[str]:
        copies = [c for c in self.catalogue.copies_of(uuid) if c.location != exclude]
        copies.sort(key=lambda c: (c.status != "verified",
                                   -(as_utc(c.verified_at).timestamp() if c.verified_at else 0)))
        return [c.location for c in copies]

    def _stage(self, uuid: str, paths: list[str], expected: dict[str, ExpectedFile],
               exclude: str, staging: Path) -> dict[str, str]:
        """Fetch each file from the first copy whose bytes verify; raise _NoSource if any
        file has none (after trying all)."""
        sources = self._sources(uuid, exclude)
        chosen: dict[str, str] = {}
        missing = []
        for path in paths:
            for name in sources:
                if self._fetch(self.auditor.location(name), uuid, path, expected[path],
                               staging / path):
                    chosen[path] = name
                    break
            else:
                missing.append(path)
        if missing:
            raise _NoSource(missing)
        return chosen

    @staticmethod
    def _fetch(source: Location, uuid: str, path: str, want: ExpectedFile, target: Path) -> bool:
        target.parent.mkdir(parents=True, exist_ok=True)
        hashers = {name: hashlib.new(name) for name in want.digests}
        size = 0
        try:
            with source.open(uuid, path) as stream, open(target, "wb") as out:
                while chunk := stream.read(1 << 20):
                    size += len(chunk)
                    for hasher in hashers.values():
                        hasher.update(chunk)
                    out.write(chunk)
        except (StorageError, OSError):
            target.unlink(missing_ok=True)
            return False
        if size != want.size or any(h.hexdigest() != want.digests[n] for n, h in hashers.items()):
            target.unlink(missing_ok=True)
            return False
        return True

    def _quarantine(self, location: Location, uuid: str, path: str, request_id: str) -> None:
        target = self.settings.home / "quarantine" / f"repair-{request_id}" / uuid / path
        target.parent.mkdir(parents=True, exist_ok=True)
        with location.open(uuid, path) as stream, open(target, "wb") as out:
            shutil.copyfileobj(stream, out, 1 << 20)

    def _record(self, request: RepairResult, actor: str) -> None:
        with self.catalogue.session() as s:
            row = s.get(RepairRequest, request.id)
            row.status, row.finished_at, row.detail = request.status, utcnow(), request.detail
            counts: dict[str, int] = {}
            for name in request.replaced.values():
                counts[name] = counts.get(name, 0) + 1
            row.sources = {"files": dict(list(request.replaced.items())[:1000]),
                           "by_location": counts, "removed": request.removed[:1000],
                           "unrepairable": request.unrepairable[:1000]}
            s.add(m.Event(id=str(uuidlib.uuid4()), aip_uuid=request.aip_uuid, type="replication",
                          at=precise_now(), outcome="pass" if request.status == "done" else "fail",
                          detail=f"repair {request.id} of the copy at {request.location} from "
                                 f"verified copies ({', '.join(f'{k}: {v} files' for k, v in counts.items()) or 'none'})",
                          outcome_detail=request.detail, agents=ensure_agents(s),
                          files=file_keys(s, request.aip_uuid,
                                          set(request.replaced) | set(request.unrepairable)),
                          location=request.location))
            for path in request.removed:
                self.catalogue.append_audit(s, actor, "delete-file", request.aip_uuid, {
                    "location": request.location, "path": path, "repair": request.id,
                    "kept_in": f"quarantine/repair-{request.id}"})
            action = "aip-unrepairable" if request.status == "unrepairable" else "repair"
            self.catalogue.append_audit(s, actor, action, request.aip_uuid, {
                "repair": request.id, "location": request.location, "status": request.status,
                "replaced": len(request.replaced), "removed": len(request.removed),
                "unrepairable": request.unrepairable[:100], "detail": request.detail})


def _replaces_files(location: Location) -> bool:
    """Whether the backend replaces and removes single files (else whole copies)."""
    kind = type(location)
    return kind.put_file is not Location.put_file and kind.delete_file is not Location.delete_file
