"""Reading and writing the catalogue's side of fixity: what a copy must hold, and the record
of every check (a ``fixity_checks`` row, a PREMIS event, an audit-log entry, the copy's status),
written together in one transaction.
"""

from __future__ import annotations

import json
import ssl
import uuid as uuidlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from policies.config import dangan_version
from storage.catalogue import models as m
from storage.catalogue import Catalogue, as_utc
from storage.fixity.compare import KIND_LABELS, Finding
from storage.fixity.models import AuditRunItem, CopyCheck
from storage.locations import ExpectedFile

MAX_FINDINGS_KEPT = 1000        # per check, in the catalogue; the count is always exact
MAX_FINDINGS_IN_EVENT = 50


def precise_now() -> datetime:
    """The current UTC time with microseconds: check spans and event order need them."""
    return datetime.now(UTC)


def tool_name() -> str:
    """The software that reads and hashes, as written in events and reports."""
    return f"Dangan {dangan_version()} (Python hashlib, {ssl.OPENSSL_VERSION})"


@dataclass
class CheckOutcome:
    """The result of checking one copy of an AIP.

    Attributes:
        id: the check's identifier (also of its ``fixity_checks`` row).
        depth: ``quick`` (no bytes read) or ``full`` (every byte read and hashed).
        purpose: ``audit``, ``api`` (Storage-Service check_fixity) or ``repair``.
        outcome: ``pass`` (full: every byte read and matched), ``present`` (quick: every
            file present with its recorded size — a quick check never says ``pass``),
            ``fail`` or ``error`` (the check could not be completed).
        files: files the copy must hold; files_read/bytes_read: read by this check;
        files_resumed: taken from the checkpoint of an interrupted run, not read again.
        note: what else the reader should know (checksums compared, the error).
    """

    id: str
    aip_uuid: str
    location: str
    depth: str
    purpose: str
    started: datetime
    finished: datetime
    outcome: str
    files: int = 0
    files_read: int = 0
    files_resumed: int = 0
    bytes_read: int = 0
    algorithms: tuple[str, ...] = ()
    findings: list[Finding] = field(default_factory=list)
    note: str = ""
    event_id: str = ""

    @property
    def passed(self) -> bool:
        """A full check that read and matched every byte."""
        return self.outcome == "pass"

    @property
    def found_nothing(self) -> bool:
        """The check found nothing wrong: a full pass, or a quick check's ``present``."""
        return self.outcome in ("pass", "present")

    @property
    def label(self) -> str:
        """The outcome in words, for people (a quick result never reads as a fixity one)."""
        return OUTCOME_WORDS.get(self.outcome, self.outcome)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json`` and reports."""
        return {"check": self.id, "aip": self.aip_uuid, "location": self.location,
                "depth": self.depth, "purpose": self.purpose,
                "started": self.started.isoformat(), "finished": self.finished.isoformat(),
                "outcome": self.outcome, "files": self.files, "files_read": self.files_read,
                "files_resumed": self.files_resumed, "bytes_read": self.bytes_read,
                "algorithms": list(self.algorithms), "note": self.note,
                "findings": [f.to_dict() for f in self.findings], "event": self.event_id}

    @classmethod
    def from_row(cls, row: CopyCheck) -> CheckOutcome:
        """A recorded check, read back from the catalogue."""
        findings = [Finding.from_dict(f) for f in row.findings or [] if "kind" in f]
        notes = [f.get("note", "") for f in row.findings or [] if "note" in f]
        return cls(row.id, row.aip_uuid, row.location, row.depth, row.purpose,
                   as_utc(row.started_at), as_utc(row.finished_at), row.outcome, row.files,
                   row.files_read, 0, row.bytes_read, tuple(row.algorithms or ()),
                   findings, "; ".join(n for n in notes if n), row.event_id or "")


def expected_files(catalogue: Catalogue, uuid: str) -> dict[str, ExpectedFile]:
    """Every bag file of an AIP as the catalogue records it (payload and tag files)."""
    # plain SQL: an AIP of 20,000 files is read in tens of milliseconds instead of the
    # ORM's hundreds; JSON comes back as text on SQLite and decoded on PostgreSQL
    with catalogue.session() as s:
        rows = s.execute(text("SELECT path, size, digests FROM files WHERE aip_uuid = :uuid"),
                         {"uuid": uuid}).all()
    if rows and all(isinstance(digests, str) for _p, _s, digests in rows):
        # one decode of all the texts: a call of json.loads per file costs more than parsing
        decoded = json.loads("[" + ",".join(digests or "null" for _p, _s, digests in rows) + "]")
    else:
        decoded = [json.loads(d) if isinstance(d, str) else d for _p, _s, d in rows]
    return {path: ExpectedFile(int(size), dict(digests or {}))
            for (path, size, _d), digests in zip(rows, decoded)}


def file_keys(s: Session, uuid: str, paths: Iterable[str]) -> list[str]:
    """The catalogue keys (PREMIS object ids) of some files of an AIP."""
    wanted = set(paths)
    if not wanted:
        return []
    rows = s.execute(select(m.File.path, m.File.key).where(m.File.aip_uuid == uuid)).all()
    return sorted(key for path, key in rows if path in wanted)


def ensure_agents(s: Session) -> list[str]:
    """The PREMIS agents of a fixity check (Dangan and hashlib), added once."""
    import hashlib

    hashes = ", ".join(sorted(hashlib.algorithms_guaranteed))
    agents = [(f"dangan-{dangan_version()}", "Dangan", dangan_version()),
              ("hashlib-openssl", "Python hashlib", f"{ssl.OPENSSL_VERSION}; {hashes}")]
    for agent_id, name, version in agents:
        if s.get(m.Agent, agent_id) is None:
            s.add(m.Agent(id=agent_id, name=name, type="software", version=version))
    s.flush()
    return [a[0] for a in agents]


def describe_findings(findings: list[Finding], limit: int = MAX_FINDINGS_IN_EVENT) -> str:
    """One line per finding, for event outcome notes and messages."""
    lines = [f"{f.kind} {f.path}" + (f" ({f.algorithm} expected {f.expected}, found {f.actual})"
                                      if f.algorithm and f.algorithm != "size" and f.actual
                                      else f" ({f.message})" if f.message else "")
             for f in findings[:limit]]
    if len(findings) > limit:
        lines.append(f"... and {len(findings) - limit} more")
    return "\n".join(lines)


def summarise_kinds(findings: list[Finding]) -> str:
    """``2 changed, 1 missing`` for messages."""
    counts: dict[str, int] = {}
    for finding in findings:
        counts[finding.kind] = counts.get(finding.kind, 0) + 1
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))


OUTCOME_WORDS = {"pass": "pass (every byte read and matched)",
                 "present": "quick check: present and sized",
                 "fail": "FAIL", "error": "not completed"}
"""Check outcomes in words (English); the reports carry the Chinese."""

QUICK_EVENT_TYPE = "validation"
"""The PREMIS event type of a quick check: it compares presence and sizes (and checksums the
store keeps) with the catalogue and reads no byte, so it is not a ``fixity check``."""


def event_of(outcome: CheckOutcome) -> tuple[str, str]:
    """The PREMIS event type and outcome of a check: a full one is a ``fixity check`` with
    ``pass``/``fail``; a quick one a ``validation`` with ``present``/``fail``."""
    if outcome.depth == "full":
        return "fixity check", {"pass": "pass", "fail": "fail"}.get(outcome.outcome,
                                                                    "not-checked")
    return QUICK_EVENT_TYPE, {"present": "present", "fail": "fail"}.get(outcome.outcome,
                                                                        "not-checked")


def record_check(catalogue: Catalogue, outcome: CheckOutcome, *, actor: str,
                 run_id: str | None = None) -> None:
    """Write a finished check: its row, its PREMIS event, the audit log and the copy status.

    All in one transaction; with ``run_id`` the run's item is marked done in it too.
    """
    with catalogue.session() as s:
        agents = ensure_agents(s)
        event_id = str(uuidlib.uuid4())
        outcome.event_id = event_id
        kept = [f.to_dict() for f in outcome.findings[:MAX_FINDINGS_KEPT]]
        if outcome.note:
            kept.append({"note": outcome.note})
        s.add(CopyCheck(id=outcome.id, run_id=run_id, aip_uuid=outcome.aip_uuid,
                        location=outcome.location, depth=outcome.depth, purpose=outcome.purpose,
                        started_at=outcome.started, finished_at=outcome.finished,
                        outcome=outcome.outcome, files=outcome.files,
                        files_read=outcome.files_read, bytes_read=outcome.bytes_read,
                        algorithms=list(outcome.algorithms), tool=tool_name()[:128],
                        findings=kept, event_id=event_id, actor=actor))
        event_type, event_outcome = event_of(outcome)
        s.add(m.Event(id=event_id, aip_uuid=outcome.aip_uuid, type=event_type,
                      at=outcome.finished, outcome=event_outcome,
                      detail=_event_detail(outcome), outcome_detail=_event_outcome(outcome),
                      agents=agents,
                      files=file_keys(s, outcome.aip_uuid, {f.path for f in outcome.findings}),
                      location=outcome.location))
        _update_copy(s, outcome)
        if run_id is not None:
            item = s.get(AuditRunItem, (run_id, outcome.aip_uuid, outcome.location))
            if item is not None:
                item.state, item.check_id = "done", outcome.id
        catalogue.append_audit(s, actor, "fixity-check", outcome.aip_uuid, {
            "check": outcome.id, "location": outcome.location, "depth": outcome.depth,
            "purpose": outcome.purpose, "outcome": outcome.outcome, "files": outcome.files,
            "bytes_read": outcome.bytes_read, "findings": len(outcome.findings),
            "event": event_id})


def _event_detail(outcome: CheckOutcome) -> str:
    depth = ("full check: every byte re-read and hashed" if outcome.depth == "full" else
             "quick check (not a fixity check): presence, size and stored checksum, "
             "no bytes read")
    return (f"{depth}; copy at {outcome.location}; purpose {outcome.purpose}; "
            f"algorithms {'+'.join(outcome.algorithms) or '-'}; tool {tool_name()}; "
            f"started {outcome.started.isoformat()}; finished {outcome.finished.isoformat()}; "
            f"{outcome.files} files, {outcome.files_read} read "
            f"({outcome.files_resumed} from an interrupted run's checkpoint), "
            f"{outcome.bytes_read} bytes read")


def _event_outcome(outcome: CheckOutcome) -> str:
    parts = []
    if outcome.findings:
        parts.append(f"{summarise_kinds(outcome.findings)}:\n{describe_findings(outcome.findings)}")
    if outcome.note:
        parts.append(outcome.note)
    return "\n".join(parts)


def _update_copy(s: Session, outcome: CheckOutcome) -> None:
    copy = s.scalars(select(m.Copy).where(m.Copy.aip_uuid == outcome.aip_uuid,
                                          m.Copy.location == outcome.location)).first()
    if copy is None or outcome.outcome == "error":
        return
    if outcome.outcome == "fail":
        everything_missing = outcome.findings and all(f.kind == "missing"
                                                      for f in outcome.findings) \
            and len(outcome.findings) >= outcome.files
        copy.status = "missing" if everything_missing else "damaged"
    elif outcome.depth == "full":
        # only a full read proves the copy intact; a quick pass leaves the record as it was
        copy.status, copy.verified_at = "verified", outcome.finished


def last_full_checks(s: Session) -> dict[tuple[str, str], CopyCheck]:
    """The latest completed full check of every copy that has one."""
    latest = (select(CopyCheck.aip_uuid, CopyCheck.location,
                     func.max(CopyCheck.finished_at).label("at"))
              .where(CopyCheck.depth == "full", CopyCheck.outcome != "error")
              .group_by(CopyCheck.aip_uuid, CopyCheck.location).subquery())
    rows = s.scalars(select(CopyCheck).join(latest, (CopyCheck.aip_uuid == latest.c.aip_uuid)
                                            & (CopyCheck.location == latest.c.location)
                                            & (CopyCheck.finished_at == latest.c.at))
                     .where(CopyCheck.depth == "full")).all()
    return {(r.aip_uuid, r.location): r for r in rows}


def last_quick_checks(s: Session) -> dict[tuple[str, str], CopyCheck]:
    """The latest quick check of every copy that has one."""
    latest = (select(CopyCheck.aip_uuid, CopyCheck.location,
                     func.max(CopyCheck.finished_at).label("at"))
              .where(CopyCheck.depth == "quick")
              .group_by(CopyCheck.aip_uuid, CopyCheck.location).subquery())
    rows = s.scalars(select(CopyCheck).join(latest, (CopyCheck.aip_uuid == latest.c.aip_uuid)
                                            & (CopyCheck.location == latest.c.location)
                                            & (CopyCheck.finished_at == latest.c.at))
                     .where(CopyCheck.depth == "quick")).all()
    return {(r.aip_uuid, r.location): r for r in rows}


def kind_label(kind: str) -> str:
    """Chinese name of a finding kind."""
    return KIND_LABELS.get(kind, kind)
