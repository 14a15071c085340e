"""Appraisal batches (鉴定批次): propose, decide, submit, approve or reject, execute; holds.

The workflow an archives bureau follows (DA/T 13-2022 practice, GB/T 18894): an archivist
proposes a batch of AIPs whose 保管期限 ended (or that reach the 25-year open review), the
appraisal committee decides per record, the batch is submitted, someone other than its proposer
approves it, and destruction is carried out before a witness (监销人). Each step is a PREMIS
event on every AIP it concerns and an entry of the hash-chained audit log.

Rules that no caller can bypass (they are checked here, not in the commands):

- the proposer never approves their own batch, nor does whoever submitted it;
- a decision changed after submission sends the batch back to draft with a new revision: an
  approval covers exactly the revision approved, and execution checks it;
- a held AIP (冻结) cannot be proposed, approved for destruction or destroyed;
- the witness is neither the proposer nor the approver;
- nothing is destroyed before its 保管期限 has ended, and no object under Object Lock or legal
  hold is touched: that AIP stays ``deferred`` with the date destruction becomes possible, and
  a later execution finishes it.

Destruction writes the tombstone first, then deletes copy after copy, recording each in the
tombstone, so an interrupted execution never leaves an AIP half deleted without saying which
copies are gone; running ``execute`` again finishes it.
"""

from __future__ import annotations

import json
import uuid as uuidlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select

from policies import DanganError, NotFoundError, Settings, UsageError
from policies.errors import ObjectLocked, ObjectNotFound, StorageError
from storage.appraisal.models import AppraisalBatch, AppraisalEntry, Hold, Tombstone
from storage.catalogue import models as m
from storage.catalogue import Catalogue, CodeRegistry, as_utc, utcnow
from storage.index import unindex_aip
from storage.locations import crash_point

KINDS = {"disposal": "JD", "open-review": "KF"}
DISPOSAL_DECISIONS = ("destroy", "extend:D10", "extend:D30", "permanent", "review")
OPEN_DECISIONS = ("open", "control", "review")
DECISION_LABELS = {"destroy": "销毁", "extend:D10": "延长至定期10年", "extend:D30": "延长至定期30年",
                   "permanent": "转为永久", "review": "继续审查", "open": "开放", "control": "控制"}
STATUS_LABELS = {"draft": "草拟", "submitted": "待批准", "approved": "已批准", "rejected": "已退回",
                 "executing": "执行中", "executed": "已执行"}
OPEN_BATCHES = ("draft", "submitted", "approved", "rejected", "executing")
TOMBSTONE_OBJECT = "tombstones.json"   # in every location: AIP id -> its tombstone


class AppraisalRefused(DanganError):
    """The workflow does not allow this step (self-approval, a held AIP, an unapproved
    revision …): nothing was changed."""

    exit_code = 1


@dataclass
class ExecutionReport:
    """What one ``execute`` did, per AIP."""

    batch: str
    done: list[dict[str, Any]] = field(default_factory=list)
    deferred: list[dict[str, Any]] = field(default_factory=list)
    held: list[dict[str, Any]] = field(default_factory=list)
    status: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return asdict(self)


# -- reading -----------------------------------------------------------------------------------

def get_batch(s: Any, batch_id: str) -> AppraisalBatch:
    """The batch, or NotFoundError naming it."""
    batch = s.get(AppraisalBatch, batch_id)
    if batch is None:
        raise NotFoundError(f"no appraisal batch {batch_id}")
    return batch


def _entries(s: Any, batch_id: str) -> list[AppraisalEntry]:
    return list(s.scalars(select(AppraisalEntry).where(AppraisalEntry.batch_id == batch_id)
                          .order_by(AppraisalEntry.archival_code, AppraisalEntry.aip_uuid)))


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return as_utc(value).replace(microsecond=0).isoformat()
    return value.isoformat()


def batch_summary(catalogue: Catalogue, batch_id: str) -> dict[str, Any]:
    """The batch and its entries as plain data (``dangan appraisal show``, the documents)."""
    with catalogue.session() as s:
        batch = get_batch(s, batch_id)
        held = active_holds(s, [e.aip_uuid for e in _entries(s, batch_id)])
        return {
            "id": batch.id, "kind": batch.kind, "title": batch.title, "status": batch.status,
            "status_label": STATUS_LABELS.get(batch.status, batch.status),
            "revision": batch.revision, "proposer": batch.proposer,
            "created_at": _iso(batch.created_at), "criteria": batch.criteria,
            "submitted_by": batch.submitted_by, "submitted_at": _iso(batch.submitted_at),
            "approver": batch.approver, "approved_at": _iso(batch.approved_at),
            "approved_revision": batch.approved_revision,
            "rejected_by": batch.rejected_by, "rejection_reason": batch.rejection_reason,
            "witness": batch.witness, "executed_at": _iso(batch.executed_at),
            "entries": [{
                "aip": e.aip_uuid, "archival_code": e.archival_code, "title": e.title,
                "year": e.year, "retention_period": e.retention_period,
                "expiry_date": _iso(e.expiry_date), "open_date": _iso(e.open_date),
                "control_id": e.control_id, "suggested": e.suggested, "decision": e.decision,
                "decision_label": DECISION_LABELS.get(e.decision or "", ""),
                "reason": e.reason, "decided_by": e.decided_by, "decided_at": _iso(e.decided_at),
                "outcome": e.outcome, "outcome_detail": e.outcome_detail,
                "possible_from": _iso(e.possible_from), "held": e.aip_uuid in held,
            } for e in _entries(s, batch_id)],
        }


def list_batches(catalogue: Catalogue) -> list[dict[str, Any]]:
    """Every batch, newest first, with its counts."""
    with catalogue.session() as s:
        counts = dict(s.execute(select(AppraisalEntry.batch_id, func.count())
                                .group_by(AppraisalEntry.batch_id)).all())
        return [{"id": b.id, "kind": b.kind, "title": b.title, "status": b.status,
                 "status_label": STATUS_LABELS.get(b.status, b.status), "revision": b.revision,
                 "proposer": b.proposer, "approver": b.approver, "entries": counts.get(b.id, 0),
                 "created_at": _iso(b.created_at)}
                for b in s.scalars(select(AppraisalBatch).order_by(AppraisalBatch.created_at.desc(),
                                                                   AppraisalBatch.id.desc()))]


# -- holds ---------------------------------------------------------------------------------------

def active_holds(s: Any, aip_uuids: Iterable[str] | None = None) -> dict[str, Hold]:
    """The holds in force, by AIP (all AIPs, or those asked about)."""
    query = select(Hold).where(Hold.removed_at.is_(None))
    if aip_uuids is not None:
        query = query.where(Hold.aip_uuid.in_(sorted(set(aip_uuids))))
    return {h.aip_uuid: h for h in s.scalars(query.order_by(Hold.id))}


def add_hold(catalogue: Catalogue, aip_uuid: str, reason: str, actor: str) -> Hold:
    """Place a hold (冻结) on an AIP; refused without a reason or when one already stands."""
    if not reason.strip():
        raise UsageError("hold add: a reason is required (诉讼、审计 …)")
    with catalogue.session() as s:
        aip = _live_aip(s, aip_uuid)
        if active_holds(s, [aip.uuid]):
            raise AppraisalRefused(f"AIP {aip.uuid} is already held")
        hold = Hold(aip_uuid=aip.uuid, reason=reason, placed_by=actor, placed_at=utcnow())
        s.add(hold)
        _event(s, aip.uuid, "hold", f"冻结: {reason} ({actor})")
        catalogue.append_audit(s, actor, "hold-add", aip.uuid, {"reason": reason})
        s.flush()
        s.expunge(hold)
        return hold


def remove_hold(catalogue: Catalogue, aip_uuid: str, reason: str, actor: str) -> None:
    """Lift the hold on an AIP (the hold stays on record, with who lifted it and why)."""
    if not reason.strip():
        raise UsageError("hold remove: a reason is required")
    with catalogue.session() as s:
        hold = active_holds(s, [aip_uuid]).get(aip_uuid)
        if hold is None:
            raise AppraisalRefused(f"AIP {aip_uuid} is not held")
        hold.removed_by, hold.removed_at, hold.removal_reason = actor, utcnow(), reason
        _event(s, aip_uuid, "hold", f"解除冻结: {reason} ({actor})")
        catalogue.append_audit(s, actor, "hold-remove", aip_uuid, {"reason": reason})


def list_holds(catalogue: Catalogue) -> list[dict[str, Any]]:
    """The holds in force."""
    with catalogue.session() as s:
        return [{"aip": h.aip_uuid, "reason": h.reason, "placed_by": h.placed_by,
                 "placed_at": _iso(h.placed_at)} for h in active_holds(s).values()]


# -- proposing and deciding ----------------------------------------------------------------------

def _live_aip(s: Any, aip_uuid: str) -> m.Aip:
    aip = s.get(m.Aip, aip_uuid)
    if aip is None:
        raise NotFoundError(f"no AIP {aip_uuid}")
    if aip.status != "UPLOADED":
        raise AppraisalRefused(f"AIP {aip.uuid} is {aip.status}, not stored")
    return aip


def _year(s: Any, aip: m.Aip) -> str | None:
    dates = [d for d in s.scalars(select(m.Item.date).where(m.Item.aip_uuid == aip.uuid)) if d]
    return max(d[:4] for d in dates) if dates else None


def suggestion(kind: str, aip: m.Aip) -> str:
    """The decision the retention schedule suggests: an ended 定期 period → destroy (the
    committee may extend it); at open review, records without personal information → open."""
    if kind == "open-review":
        return "open" if (aip.pii_level or "none") == "none" else "control"
    if aip.retention_period in ("D10", "D30") and aip.expiry_date is not None:
        return "destroy"
    return "review"


def _next_id(s: Any, kind: str, today: date) -> str:
    prefix = f"{KINDS[kind]}-{today.year}-"
    taken = s.scalars(select(AppraisalBatch.id).where(AppraisalBatch.id.like(prefix + "%")))
    numbers = [int(i.removeprefix(prefix)) for i in taken if i.removeprefix(prefix).isdigit()]
    return f"{prefix}{max(numbers, default=0) + 1:04d}"


def propose(catalogue: Catalogue, *, title: str, proposer: str, kind: str = "disposal",
            due_before: date | None = None, aips: Sequence[str] = (),
            today: date | None = None) -> tuple[str, list[str]]:
    """Make a batch of the AIPs due by ``due_before`` (their 保管期限 ends, or for an open
    review their 开放 date comes) and of ``aips``; return its id and what was left out why.

    Raises:
        UsageError: no title, no AIP selected, or an unknown kind.
        AppraisalRefused: an AIP named in ``aips`` is held, deleted or already in an open
            batch (nothing is made).
    """
    if kind not in KINDS:
        raise UsageError(f"unknown batch kind {kind!r}; known: {', '.join(KINDS)}")
    if not title.strip():
        raise UsageError("appraisal propose: --title is required")
    today = today or date.today()
    with catalogue.session() as s:
        busy = set(s.scalars(select(AppraisalEntry.aip_uuid).join(
            AppraisalBatch, AppraisalBatch.id == AppraisalEntry.batch_id)
            .where(AppraisalBatch.status.in_(OPEN_BATCHES))))
        chosen: dict[str, m.Aip] = {}
        skipped: list[str] = []
        for uuid in aips:
            aip = _live_aip(s, uuid)
            if active_holds(s, [aip.uuid]):
                raise AppraisalRefused(f"AIP {aip.uuid} ({aip.archival_code or aip.label}) is "
                                       "held (冻结): it cannot be proposed")
            if aip.uuid in busy:
                raise AppraisalRefused(f"AIP {aip.uuid} is already in an open batch")
            chosen[aip.uuid] = aip
        if due_before is not None:
            column = m.Aip.open_date if kind == "open-review" else m.Aip.expiry_date
            query = select(m.Aip).where(m.Aip.status == "UPLOADED", column.is_not(None),
                                        column <= due_before)
            if kind == "open-review":
                query = query.where(m.Aip.control_id != "开放")
            held = active_holds(s)
            for aip in s.scalars(query.order_by(m.Aip.archival_code, m.Aip.uuid)):
                if aip.uuid in chosen:
                    continue
                if aip.uuid in held:
                    skipped.append(f"{aip.archival_code or aip.uuid}: held (冻结)")
                elif aip.uuid in busy:
                    skipped.append(f"{aip.archival_code or aip.uuid}: already in an open batch")
                else:
                    chosen[aip.uuid] = aip
        if not chosen:
            raise UsageError("appraisal propose: no AIP selected (use --due-before or --aip)"
                             + (f"; left out: {'; '.join(skipped)}" if skipped else ""))
        batch = AppraisalBatch(id=_next_id(s, kind, today), kind=kind, title=title,
                               status="draft", revision=1, proposer=proposer,
                               created_at=utcnow(),
                               criteria={"due_before": _iso(due_before), "aips": list(aips)})
        s.add(batch)
        for aip in chosen.values():
            s.add(AppraisalEntry(
                batch_id=batch.id, aip_uuid=aip.uuid, archival_code=aip.archival_code,
                title=aip.label, year=_year(s, aip), retention_period=aip.retention_period,
                expiry_date=aip.expiry_date, open_date=aip.open_date, control_id=aip.control_id,
                suggested=suggestion(kind, aip), outcome="pending", outcome_detail=""))
            _event(s, aip.uuid, "appraisal", f"鉴定批次 {batch.id}: proposed by {proposer}")
        catalogue.append_audit(s, proposer, "appraisal-propose", batch.id,
                               {"title": title, "kind": kind, "aips": sorted(chosen),
                                "skipped": skipped})
        return batch.id, skipped


def decide(catalogue: Catalogue, batch_id: str, aip_uuid: str, decision: str, reason: str,
           actor: str) -> bool:
    """Record the committee's decision on one AIP of a batch; return True when this sent a
    submitted or approved batch back to draft (a new revision needs a new approval)."""
    with catalogue.session() as s:
        batch = get_batch(s, batch_id)
        allowed = OPEN_DECISIONS if batch.kind == "open-review" else DISPOSAL_DECISIONS
        if decision not in allowed:
            raise UsageError(f"decision {decision!r} is not one of {', '.join(allowed)} "
                             f"(batch {batch.id} is a {batch.kind} batch)")
        if not reason.strip():
            raise UsageError("appraisal decide: --reason is required (鉴定意见)")
        if batch.status in ("executing", "executed"):
            raise AppraisalRefused(f"batch {batch.id} is {batch.status}: decisions are final")
        entry = s.scalars(select(AppraisalEntry).where(AppraisalEntry.batch_id == batch.id,
                                                       AppraisalEntry.aip_uuid == aip_uuid)).first()
        if entry is None:
            raise NotFoundError(f"AIP {aip_uuid} is not in batch {batch.id}")
        reopened = _reopen(batch)
        entry.decision, entry.reason = decision, reason
        entry.decided_by, entry.decided_at = actor, utcnow()
        _event(s, aip_uuid, "appraisal", f"鉴定批次 {batch.id} revision {batch.revision}: "
               f"{DECISION_LABELS.get(decision, decision)} decided by {actor}: {reason}")
        catalogue.append_audit(s, actor, "appraisal-decide", batch.id,
                               {"aip": aip_uuid, "decision": decision, "reason": reason,
                                "revision": batch.revision})
        return reopened


def _reopen(batch: AppraisalBatch) -> bool:
    if batch.status in ("submitted", "approved", "rejected"):
        batch.status = "draft"
        batch.revision += 1
        batch.approver = batch.approved_at = batch.approved_revision = None
        return True
    return False


def submit(catalogue: Catalogue, batch_id: str, actor: str) -> None:
    """Put the batch before its approver: every entry must have a decision."""
    with catalogue.session() as s:
        batch = get_batch(s, batch_id)
        if batch.status != "draft":
            raise AppraisalRefused(f"batch {batch.id} is {batch.status}, not draft")
        undecided = [e.archival_code or e.aip_uuid for e in _entries(s, batch.id)
                     if e.decision is None]
        if undecided:
            raise AppraisalRefused(f"batch {batch.id}: {len(undecided)} AIP(s) without a "
                                   f"decision: {', '.join(undecided[:10])}")
        batch.status, batch.submitted_by = "submitted", actor
        batch.submitted_at, batch.submitted_revision = utcnow(), batch.revision
        for entry in _entries(s, batch.id):
            _event(s, entry.aip_uuid, "appraisal", f"鉴定批次 {batch.id} revision "
                   f"{batch.revision} submitted by {actor} for approval")
        catalogue.append_audit(s, actor, "appraisal-submit", batch.id,
                               {"revision": batch.revision})


def approve(catalogue: Catalogue, batch_id: str, approver: str) -> None:
    """Approve a submitted batch, as someone who neither proposed nor submitted it."""
    with catalogue.session() as s:
        batch = get_batch(s, batch_id)
        if batch.status != "submitted":
            raise AppraisalRefused(f"batch {batch.id} is {batch.status}: only a submitted "
                                   "batch can be approved")
        if approver in (batch.proposer, batch.submitted_by):
            raise AppraisalRefused(f"batch {batch.id} was proposed or submitted by {approver}: "
                                   "another person must approve it (审批不得由提出人本人进行)")
        entries = _entries(s, batch.id)
        held = active_holds(s, [e.aip_uuid for e in entries if e.decision == "destroy"])
        if held:
            raise AppraisalRefused(f"batch {batch.id}: held AIP(s) cannot be approved for "
                                   f"destruction: {', '.join(sorted(held))}")
        batch.status, batch.approver = "approved", approver
        batch.approved_at, batch.approved_revision = utcnow(), batch.revision
        for entry in entries:
            _event(s, entry.aip_uuid, "appraisal",
                   f"鉴定批次 {batch.id} revision {batch.revision} approved by {approver}: "
                   f"{DECISION_LABELS.get(entry.decision or '', entry.decision)}")
        catalogue.append_audit(s, approver, "appraisal-approve", batch.id,
                               {"revision": batch.revision})


def reject(catalogue: Catalogue, batch_id: str, actor: str, reason: str) -> None:
    """Send a submitted batch back, with the reason; its decisions may then be changed."""
    if not reason.strip():
        raise UsageError("appraisal reject: --reason is required")
    with catalogue.session() as s:
        batch = get_batch(s, batch_id)
        if batch.status != "submitted":
            raise AppraisalRefused(f"batch {batch.id} is {batch.status}, not submitted")
        if actor in (batch.proposer, batch.submitted_by):
            raise AppraisalRefused(f"batch {batch.id}: its proposer cannot reject it; "
                                   "withdraw by changing a decision instead")
        batch.status, batch.rejected_by, batch.rejection_reason = "rejected", actor, reason
        for entry in _entries(s, batch.id):
            _event(s, entry.aip_uuid, "appraisal", f"鉴定批次 {batch.id} revision "
                   f"{batch.revision} rejected by {actor}: {reason}")
        catalogue.append_audit(s, actor, "appraisal-reject", batch.id,
                               {"reason": reason, "revision": batch.revision})


# -- execution -----------------------------------------------------------------------------------

OpenDecider = Callable[[str, str, str, str], None]
"""Records an open-review outcome: (aip, "open" | "control", reason, actor)."""


def execute(settings: Settings, catalogue: Catalogue, batch_id: str, witness: str, *,
            decide_open: OpenDecider | None = None, now: datetime | None = None,
            ) -> ExecutionReport:
    """Carry out an approved batch before ``witness`` (监销人); run again to finish what was
    deferred (Object Lock, a hold placed after approval, a period not yet ended)."""
    from policies import load_retention_policy

    now = now or datetime.now(timezone.utc)
    with catalogue.session() as s:
        batch = get_batch(s, batch_id)
        if batch.status not in ("approved", "executing"):
            raise AppraisalRefused(f"batch {batch.id} is {batch.status}: only an approved "
                                   "batch can be executed")
        if batch.approved_revision != batch.revision:
            raise AppraisalRefused(f"batch {batch.id} changed after approval (revision "
                                   f"{batch.revision}, approved {batch.approved_revision})")
        if witness in (batch.proposer, batch.approver) or not witness.strip():
            raise AppraisalRefused(f"batch {batch.id}: the witness (监销人) must be a third "
                                   "person, neither the proposer nor the approver")
        if batch.witness and batch.witness != witness:
            raise AppraisalRefused(f"batch {batch.id} is being executed before {batch.witness}")
        batch.status, batch.witness = "executing", witness
        catalogue.append_audit(s, witness, "appraisal-execute", batch.id,
                               {"revision": batch.revision})
        todo = [(e.id, e.aip_uuid, e.decision, e.reason or "") for e in _entries(s, batch.id)
                if e.outcome != "done"]
        meta = {"proposer": batch.proposer, "approver": batch.approver or "",
                "approved_at": batch.approved_at, "witness": witness, "batch": batch.id}
    report = ExecutionReport(batch_id)
    retention = load_retention_policy(settings)
    for entry_id, aip_uuid, decision, reason in todo:
        if decision == "destroy":
            result = destroy_aip(settings, catalogue, aip_uuid, reason=reason, now=now, **meta)
        elif decision in ("extend:D10", "extend:D30", "permanent"):
            result = _change_retention(settings, catalogue, aip_uuid, decision, reason,
                                           witness, retention, batch_id)
        elif decision in ("open", "control"):
            if decide_open is None:
                raise UsageError("an open-review batch is executed through the access layer")
            decide_open(aip_uuid, decision, reason, batch_id)
            result = {"outcome": "done", "detail": f"开放审核: {DECISION_LABELS[decision]}"}
            with catalogue.session() as s:
                _event(s, aip_uuid, "appraisal", f"开放审核 {batch_id}: "
                       f"{DECISION_LABELS[decision]} recorded before {witness}: {reason}")
        else:
            result = {"outcome": "done", "detail": "继续审查: kept, nothing changed"}
        with catalogue.session() as s:
            entry = s.get(AppraisalEntry, entry_id)
            entry.outcome, entry.outcome_detail = result["outcome"], result["detail"]
            entry.possible_from = result.get("possible_from")
        line = {"aip": aip_uuid, "decision": decision, "detail": result["detail"],
                "possible_from": _iso(result.get("possible_from"))}
        {"done": report.done, "deferred": report.deferred, "held": report.held}[
            result["outcome"]].append(line)
    with catalogue.session() as s:
        batch = get_batch(s, batch_id)
        if all(e.outcome == "done" for e in _entries(s, batch_id)):
            batch.status, batch.executed_at = "executed", utcnow()
        report.status = batch.status
    return report


def _change_retention(settings: Settings, catalogue: Catalogue, aip_uuid: str, decision: str,
                      reason: str, actor: str, retention: Any, batch: str) -> dict[str, Any]:
    """Extend the 保管期限 or make it permanent: the catalogue, a new AIP version whose METS
    says so (with the batch's PREMIS events), and every copy locked again for the new
    period (:func:`storage.appraisal.relock.retention_version`)."""
    from storage.appraisal.relock import retention_version

    code = "Y" if decision == "permanent" else decision.split(":", 1)[1]
    with catalogue.session() as s:
        aip = _live_aip(s, aip_uuid)
        old = (aip.retention_period, _iso(aip.expiry_date))
        year = _year(s, aip)
        expiry = retention.expiry(code, int(year)) if year and code != "Y" else None
        if expiry is not None and old[1] and expiry.isoformat() <= old[1]:
            # an extension never shortens: the new period counts from the end of the old one
            expiry = date.fromisoformat(old[1]) + (expiry - date(int(year), 12, 31))
        detail = (f"保管期限 {old[0]} → {code}, expiry {old[1] or '-'} → "
                  f"{_iso(expiry) or '永久'}: {reason}")
        if (aip.retention_period, aip.expiry_date) == (code, expiry):
            return {"outcome": "done", "detail": detail + " (already recorded)"}
        _event(s, aip.uuid, "appraisal", f"鉴定批次 {batch}: {detail}")
    made = retention_version(settings, catalogue, aip_uuid, period=code, expiry=expiry,
                             reason=reason, actor=actor, batch=batch, detail=detail)
    with catalogue.session() as s:
        catalogue.append_audit(s, actor, "retention-change", aip_uuid,
                               {"from": old[0], "to": code, "expiry": _iso(expiry),
                                "reason": reason, "batch": batch,
                                "version": made["version"], "locks": made["locks"]})
    locks = ", ".join(f"{k}: {v}" for k, v in sorted(made["locks"].items())) or "none"
    return {"outcome": "done",
            "detail": f"{detail}; version {made['version']}, re-locked ({locks})"}


def destroy_aip(settings: Settings, catalogue: Catalogue, aip_uuid: str, *, batch: str,
                reason: str, proposer: str, approver: str, approved_at: datetime,
                witness: str, now: datetime) -> dict[str, Any]:
    """Destroy every copy of one AIP (every version, every object version on S3) and keep its
    tombstone; what a lock or hold keeps is left untouched and reported ``deferred``."""
    from storage.copies import deletion_refusal, forget_lock, recorded_locks
    from storage.locations import open_location
    from policies import load_storage_policy

    policy = load_storage_policy(settings)
    locations = {spec.name: open_location(spec, settings=settings) for spec in policy.locations}
    with catalogue.session() as s:
        aip = s.get(m.Aip, aip_uuid)
        if aip is None:
            raise NotFoundError(f"no AIP {aip_uuid}")
        if active_holds(s, [aip_uuid]):
            return {"outcome": "held", "detail": "held (冻结): not destroyed"}
        tomb = s.get(Tombstone, aip_uuid)
        if tomb is None:
            if aip.status != "UPLOADED":
                raise AppraisalRefused(f"AIP {aip.uuid} is {aip.status}, not stored")
            files = list(s.scalars(select(m.File).where(m.File.aip_uuid == aip_uuid)))
            tomb = Tombstone(
                aip_uuid=aip.uuid, archival_code=aip.archival_code, title=aip.label,
                retention_period=aip.retention_period, expiry_date=aip.expiry_date,
                batch_id=batch, decision="destroy", reason=reason, proposer=proposer,
                approver=approver, witness=witness, approved_at=approved_at,
                started_at=utcnow(), complete=False, files=len(files),
                size=sum(f.size for f in files),
                digests={f.path: f.sha256 for f in files},
                copies={c.location: "present" for c in catalogue.copies_of(aip_uuid)})
            # its 档号 are retired at once: never handed out again, not even after a rebuild
            tomb.codes = CodeRegistry(catalogue).retire(s, aip.uuid)
            s.add(tomb)
            aip.status = "DESTROYING"
            unindex_aip(s, aip_uuid, outbox_enabled=bool(catalogue.outbox))
            _event(s, aip_uuid, "deletion", f"鉴定批次 {batch}: destruction begun before "
                   f"{witness} (approved by {approver})")
            s.flush()
            begun = tombstone_json(tomb, premis_events(s, aip_uuid))
        else:
            begun = None
        copies = dict(tomb.copies)
        locks = {row.location: row.lock() for row in recorded_locks(s, aip_uuid)}
        # the retention period first: a tombstone that could outlive it must not exist
        period = deletion_refusal(aip, [], today=now.date(), now=now)
    crash_point("destroy-tombstone")
    if begun is not None:
        # the tombstone is in storage before any copy goes: a rebuild after a crash finds it
        _store_everywhere(locations.values(), begun)
    crash_point("destroy-tombstone-stored")
    deferred: list[str] = []
    possible: list[datetime] = []
    if period is not None and "kept permanently" not in period:
        possible.append(datetime.combine(aip.expiry_date + timedelta(days=1),
                                         datetime.min.time(), timezone.utc))
        deferred.append(period)
    else:
        for name in sorted(n for n, state in copies.items() if state != "deleted"):
            location = locations.get(name)
            if location is None:
                deferred.append(f"{name}: not in the storage policy")
                continue
            lock = locks.get(name) or (location.get_retention(aip_uuid)
                                       if location.has_aip(aip_uuid) else None)
            if lock is not None and lock.in_force(now):
                deferred.append(f"{name}: {lock.describe()}")
                with catalogue.session() as s:
                    _event(s, aip_uuid, "deletion", f"鉴定批次 {batch}: copy left untouched, "
                           f"locked ({lock.describe()})", name, outcome="not-checked")
                    catalogue.append_audit(s, witness, "destroy-deferred", aip_uuid,
                                           {"batch": batch, "location": name,
                                            "lock": lock.describe()})
                if lock.retain_until is not None and not lock.legal_hold:
                    possible.append(lock.retain_until)
                continue
            was = copies[name]
            with catalogue.session() as s:    # said before it starts: maybe partly gone
                copies[name] = "deleting"
                s.get(Tombstone, aip_uuid).copies = dict(copies)
            crash_point("destroy-copy-marked")
            try:
                location.delete_aip(aip_uuid)
                crash_point("destroy-copy-deleted")
                state = "deleted"
            except ObjectNotFound:
                # no published copy: an earlier run got this far, maybe killed half-way
                # through its objects: what it left (a copy being deleted) goes now
                left = _purge_leftovers(location, aip_uuid)
                state = "deleted" if not left else "deleting"
                if left:
                    deferred.append(f"{name}: still there: {', '.join(left)}")
                    continue
            except ObjectLocked as exc:    # a lock the catalogue did not know of: untouched
                copies[name] = was
                with catalogue.session() as s:
                    s.get(Tombstone, aip_uuid).copies = dict(copies)
                deferred.append(f"{name}: {exc}")
                continue
            except StorageError as exc:    # maybe part of it is gone: it stays "deleting"
                deferred.append(f"{name}: {exc}")
                continue
            copies[name] = state
            with catalogue.session() as s:
                s.get(Tombstone, aip_uuid).copies = dict(copies)
                for row in s.scalars(select(m.Copy).where(m.Copy.aip_uuid == aip_uuid,
                                                          m.Copy.location == name)):
                    s.delete(row)
                forget_lock(s, aip_uuid, name)
                _event(s, aip_uuid, "deletion", f"鉴定批次 {batch}: copy destroyed", name)
                catalogue.append_audit(s, witness, "destroy-copy", aip_uuid,
                                       {"batch": batch, "location": name})
            crash_point("destroy-copy-recorded")
    complete = not deferred and all(state == "deleted" for state in copies.values())
    with catalogue.session() as s:
        tomb = s.get(Tombstone, aip_uuid)
        if complete:
            tomb.complete, tomb.destroyed_at = True, utcnow()
            s.get(m.Aip, aip_uuid).status = "DESTROYED"
            _event(s, aip_uuid, "deletion", f"鉴定批次 {batch}: destroyed, every copy "
                   f"({', '.join(sorted(copies)) or 'none'}), before {witness}")
            catalogue.append_audit(s, witness, "destroy", aip_uuid,
                                   {"batch": batch, "approver": approver, "witness": witness,
                                    "files": tomb.files, "copies": sorted(copies)})
        body = tombstone_json(tomb, premis_events(s, aip_uuid))
    _store_everywhere(locations.values(), body)
    if complete:
        return {"outcome": "done", "detail": f"destroyed: {len(copies)} copies, "
                f"tombstone of {len(body)} bytes kept in every location"}
    return {"outcome": "deferred", "detail": "; ".join(deferred),
            "possible_from": max(possible) if possible else None}


def _purge_leftovers(location: Any, aip_uuid: str) -> list[str]:
    """Remove what an interrupted deletion left of a copy (objects without their marker, a
    folder being deleted); return what could not be removed (empty: nothing is left)."""
    left = []
    for leftover in location.leftovers():
        if leftover.uuid != aip_uuid:
            continue
        try:
            location.discard_leftover(leftover)
        except StorageError as exc:
            left.append(f"{leftover.name} ({exc})")
    return left


def _store_everywhere(locations: Iterable[Any], body: bytes) -> None:
    """The record that it existed, kept in storage too (at each location reachable now; the
    next execution writes it again where one failed)."""
    for location in locations:
        try:
            store_tombstone(location, json.loads(body))
        except StorageError:
            pass


def tombstone_json(tomb: Tombstone, events: list[dict[str, Any]] | None = None) -> bytes:
    """The tombstone as stored beside the AIPs (what ``dangan rebuild`` reads back), with the
    PREMIS events of its appraisal and destruction (:func:`premis_events`)."""
    return json.dumps({
        "premis_events": events if events is not None else [],
        "aip": tomb.aip_uuid, "archival_code": tomb.archival_code, "title": tomb.title,
        "retention_period": tomb.retention_period, "expiry_date": _iso(tomb.expiry_date),
        "batch": tomb.batch_id, "decision": tomb.decision, "reason": tomb.reason,
        "proposer": tomb.proposer, "approver": tomb.approver, "witness": tomb.witness,
        "approved_at": _iso(tomb.approved_at), "started_at": _iso(tomb.started_at),
        "destroyed_at": _iso(tomb.destroyed_at), "complete": tomb.complete,
        "files": tomb.files, "size": tomb.size, "digests": tomb.digests, "copies": tomb.copies,
        "codes": tomb.codes or [],
    }, ensure_ascii=False, sort_keys=True, indent=1).encode("utf-8")


def stored_tombstones(location: Any) -> dict[str, dict[str, Any]]:
    """The tombstones a location keeps (none yet: empty)."""
    try:
        return json.loads(location.read_admin_object(TOMBSTONE_OBJECT))
    except ObjectNotFound:
        return {}


def store_tombstone(location: Any, tomb: dict[str, Any]) -> None:
    """Add or update one tombstone in a location's index of them (one PutObject or atomic
    rename: the index is old or new, never half written; the others it held are kept)."""
    kept = stored_tombstones(location)
    kept[tomb["aip"]] = tomb
    location.write_admin_object(TOMBSTONE_OBJECT, json.dumps(
        kept, ensure_ascii=False, sort_keys=True, indent=1).encode("utf-8"))


def restore_tombstones(location: Any, catalogue: Catalogue) -> int:
    """Put back the tombstones a location keeps that the catalogue lacks (``dangan
    rebuild``): a destroyed AIP is never resurrected, and its record stays. Returns how many."""
    restored = 0
    registry = CodeRegistry(catalogue)
    with catalogue.session() as s:
        for uuid, t in sorted(stored_tombstones(location).items()):
            # the 档号 it held stay retired (a tombstone without their list: its own 档号)
            codes = t.get("codes") or ([{"code": t["archival_code"], "bucket":
                                         t["archival_code"], "number": 0}]
                                       if t.get("archival_code") else [])
            registry.restore_retired(s, uuid, codes)
            if s.get(Tombstone, uuid) is not None:
                continue
            s.add(Tombstone(
                aip_uuid=uuid, archival_code=t["archival_code"], title=t["title"],
                retention_period=t["retention_period"],
                expiry_date=date.fromisoformat(t["expiry_date"]) if t["expiry_date"] else None,
                batch_id=t["batch"], decision=t["decision"], reason=t["reason"],
                proposer=t["proposer"], approver=t["approver"], witness=t["witness"],
                approved_at=datetime.fromisoformat(t["approved_at"]),
                started_at=datetime.fromisoformat(t["started_at"]),
                destroyed_at=datetime.fromisoformat(t["destroyed_at"])
                if t["destroyed_at"] else None,
                complete=t["complete"], files=t["files"], size=t["size"],
                digests=t["digests"], copies=t["copies"], codes=codes))
            restored += 1
        if restored:
            catalogue.append_audit(s, "rebuild", "tombstones-restored", location.url,
                                   {"count": restored})
    return restored


def tombstones(catalogue: Catalogue) -> list[dict[str, Any]]:
    """Every tombstone, as staff see them."""
    with catalogue.session() as s:
        return [json.loads(tombstone_json(t, premis_events(s, t.aip_uuid))) for t in
                s.scalars(select(Tombstone).order_by(Tombstone.started_at))]


def _event(s: Any, aip_uuid: str, kind: str, detail: str, location: str | None = None,
           outcome: str = "pass") -> None:
    s.add(m.Event(id=str(uuidlib.uuid4()), aip_uuid=aip_uuid, type=kind, at=utcnow(),
                  outcome=outcome, detail=detail, outcome_detail="", agents=[], files=[],
                  location=location))
    s.flush()


def premis_events(s: Any, aip_uuid: str) -> list[dict[str, Any]]:
    """The appraisal and deletion events of an AIP as PREMIS event semantic units (what its
    tombstone keeps once the AIP and its METS are gone)."""
    return [{"eventIdentifier": e.id, "eventType": e.type, "eventDateTime": _iso(e.at),
             "eventDetail": e.detail, "eventOutcome": e.outcome,
             **({"linkingObject": e.location} if e.location else {})}
            for e in s.scalars(select(m.Event).where(
                m.Event.aip_uuid == aip_uuid, m.Event.type.in_(("appraisal", "deletion")))
                .order_by(m.Event.at, m.Event.id))]
