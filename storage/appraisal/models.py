"""The catalogue tables of appraisal and disposition: batches (鉴定批次) and their entries, holds
(冻结) and tombstones (what remains of a destroyed AIP, for ever)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Date, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.catalogue import Base


class AppraisalBatch(Base):
    """One batch put before the appraisal committee.

    ``kind`` is ``disposal`` (保管期限 reached: destroy, extend, make permanent, review again) or
    ``open-review`` (开放审核: open or keep controlled). ``status`` moves draft → submitted →
    approved (or rejected → draft) → executed; any decision changed after submission sends it
    back to draft with ``revision`` raised, so an approval covers exactly what was approved.
    """

    __tablename__ = "appraisal_batches"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)     # JD-2026-0001
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    proposer: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    criteria: Mapped[dict[str, Any]] = mapped_column(default=dict)
    submitted_by: Mapped[str | None] = mapped_column(String(64))
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    submitted_revision: Mapped[int | None] = mapped_column(Integer)
    approver: Mapped[str | None] = mapped_column(String(64))
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    approved_revision: Mapped[int | None] = mapped_column(Integer)
    rejected_by: Mapped[str | None] = mapped_column(String(64))
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    witness: Mapped[str | None] = mapped_column(String(64))
    executed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AppraisalEntry(Base):
    """One AIP of a batch: what it was when proposed, the suggested and the decided outcome,
    and what execution did."""

    __tablename__ = "appraisal_entries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("appraisal_batches.id"), index=True)
    aip_uuid: Mapped[str] = mapped_column(String(36), index=True)
    archival_code: Mapped[str | None] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(Text)
    year: Mapped[str | None] = mapped_column(String(8))
    retention_period: Mapped[str | None] = mapped_column(String(8))
    expiry_date: Mapped[date | None] = mapped_column(Date)
    open_date: Mapped[date | None] = mapped_column(Date)
    control_id: Mapped[str | None] = mapped_column(String(8))
    suggested: Mapped[str] = mapped_column(String(16))
    decision: Mapped[str | None] = mapped_column(String(16))   # destroy | extend:D30 | ...
    reason: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(16), default="pending")  # pending|done|deferred|held
    outcome_detail: Mapped[str] = mapped_column(Text, default="")
    possible_from: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Hold(Base):
    """A hold (冻结) on an AIP, for litigation or audit: while it stands the AIP cannot be
    proposed, approved or destroyed. Removed holds stay, with who removed them and why."""

    __tablename__ = "appraisal_holds"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    aip_uuid: Mapped[str] = mapped_column(String(36), index=True)
    reason: Mapped[str] = mapped_column(Text)
    placed_by: Mapped[str] = mapped_column(String(64))
    placed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    removed_by: Mapped[str | None] = mapped_column(String(64))
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    removal_reason: Mapped[str | None] = mapped_column(Text)


class Tombstone(Base):
    """What is kept of a destroyed AIP: that it existed, what it was, who decided, approved
    and witnessed its destruction, when, and the digests of every file destroyed.

    Written before the first copy is deleted (``complete`` False, ``copies`` says which copy
    is gone and which is still waiting), so an interrupted execution never leaves an AIP half
    deleted without saying so. A copy of it is kept in every location as an administrative
    object (``tombstone-<uuid>.json``), from which ``dangan rebuild`` restores it."""

    __tablename__ = "appraisal_tombstones"
    aip_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    archival_code: Mapped[str | None] = mapped_column(String(128), index=True)
    title: Mapped[str] = mapped_column(Text)
    retention_period: Mapped[str | None] = mapped_column(String(8))
    expiry_date: Mapped[date | None] = mapped_column(Date)
    batch_id: Mapped[str] = mapped_column(String(32))
    decision: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    proposer: Mapped[str] = mapped_column(String(64))
    approver: Mapped[str] = mapped_column(String(64))
    witness: Mapped[str] = mapped_column(String(64))
    approved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    destroyed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    complete: Mapped[bool] = mapped_column(default=False)
    files: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(BigInteger)
    digests: Mapped[dict[str, Any]] = mapped_column(default=dict)    # path -> sha256
    copies: Mapped[dict[str, Any]] = mapped_column(default=dict)     # location -> state
    codes: Mapped[list[Any]] = mapped_column(default=list)   # the 档号 it held, retired
