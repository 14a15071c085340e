"""The indexing outbox: search-index work recorded in the catalogue transaction that makes it due.

When search runs on an external engine (Elasticsearch), adding an AIP to the catalogue also adds
an ``index_outbox`` row in the same transaction, so an AIP can never be catalogued without its
indexing being owed. An indexer claims due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
several indexers never take the same row), pushes the documents to the engine and marks the rows
done; a failure is kept with its message and retried with back-off. ``index_state`` holds small
named records of the index's own state (the reindex checkpoint).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import DateTime, Index, Integer, String, Text, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from storage.catalogue import Base

#: op values: index (push the AIP's documents) | delete (remove them from the engine)
OPS = ("index", "delete")
MAX_BACKOFF = timedelta(hours=1)


def utcnow() -> datetime:
    """Now, timezone-aware UTC (microseconds kept: outbox order within a second matters)."""
    return datetime.now(timezone.utc)


def as_utc(value: datetime | None) -> datetime | None:
    """A datetime read back from the catalogue as aware UTC (SQLite returns naive values)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


class OutboxEntry(Base):
    """Indexing owed for one AIP: created with the catalogue change, done once the engine has it.

    Attributes:
        op: ``index`` or ``delete``.
        status: ``pending`` (including failed attempts that will be retried) | ``done`` |
            ``failed`` (attempts exhausted; ``dangan index retry`` queues it again).
        attempts, last_error, next_attempt_at: the retry state.
    """

    __tablename__ = "index_outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    aip_uuid: Mapped[str] = mapped_column(String(36), index=True)
    op: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(8), default="pending")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)


Index("ix_index_outbox_due", OutboxEntry.status, OutboxEntry.next_attempt_at)


class IndexState(Base):
    """A small named record of the search index's own state (e.g. the reindex checkpoint)."""

    __tablename__ = "index_state"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def enqueue(s: Session, aip_uuid: str, op: str = "index") -> None:
    """Record indexing owed for an AIP, inside the caller's transaction.

    Raises:
        ValueError: ``op`` is not one of :data:`OPS`.
    """
    if op not in OPS:
        raise ValueError(f"unknown outbox op {op!r}")
    now = utcnow()
    s.add(OutboxEntry(aip_uuid=aip_uuid, op=op, status="pending", created_at=now,
                      attempts=0, next_attempt_at=now))


def claim_due(s: Session, limit: int, now: datetime | None = None) -> list[OutboxEntry]:
    """Lock and return up to ``limit`` due entries, oldest first.

    On PostgreSQL the rows stay locked (``SKIP LOCKED``) until the caller's transaction ends, so
    concurrent indexers share the work without taking the same row; SQLite serialises writers.
    """
    query = (select(OutboxEntry)
             .where(OutboxEntry.status == "pending",
                    OutboxEntry.next_attempt_at <= (now or utcnow()))
             .order_by(OutboxEntry.id).limit(limit))
    if s.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(s.scalars(query))


def backoff(attempts: int) -> timedelta:
    """Delay before the next attempt: 2, 4, 8 … seconds, at most an hour."""
    return min(timedelta(seconds=2 ** max(attempts, 1)), MAX_BACKOFF)


def mark_done(entries: Iterable[OutboxEntry], now: datetime | None = None) -> None:
    """Mark claimed entries done (the caller commits)."""
    now = now or utcnow()
    for entry in entries:
        entry.status, entry.done_at, entry.last_attempt_at = "done", now, now
        entry.attempts += 1
        entry.last_error = None


def mark_failed(entries: Iterable[OutboxEntry], error: str, max_attempts: int,
                now: datetime | None = None) -> None:
    """Record a failed attempt; the entry is retried later, or ``failed`` once exhausted."""
    now = now or utcnow()
    for entry in entries:
        entry.attempts += 1
        entry.last_attempt_at, entry.last_error = now, error[:4000]
        entry.next_attempt_at = now + backoff(entry.attempts)
        if entry.attempts >= max_attempts:
            entry.status = "failed"


def retry_failed(s: Session) -> int:
    """Queue every ``failed`` entry again; return how many."""
    result = s.execute(update(OutboxEntry).where(OutboxEntry.status == "failed")
                       .values(status="pending", next_attempt_at=utcnow(), attempts=0))
    return int(result.rowcount or 0)


@dataclass
class OutboxStatus:
    """The indexing lag and failures, for ``dangan index status``.

    Attributes:
        pending: entries not yet done (including those waiting for a retry).
        retrying: pending entries that failed at least once.
        failed: entries whose attempts are exhausted.
        done: entries done.
        oldest_pending: creation time of the oldest pending entry.
        lag_seconds: its age, 0 when nothing is pending.
        failures: the latest failing entries (aip, attempts, error, status).
    """

    pending: int = 0
    retrying: int = 0
    failed: int = 0
    done: int = 0
    oldest_pending: datetime | None = None
    lag_seconds: float = 0.0
    failures: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """As plain data (ISO timestamps)."""
        return {"pending": self.pending, "retrying": self.retrying, "failed": self.failed,
                "done": self.done, "lag_seconds": round(self.lag_seconds, 1),
                "oldest_pending": self.oldest_pending.isoformat() if self.oldest_pending else None,
                "failures": self.failures}


def outbox_status(s: Session, failures: int = 10) -> OutboxStatus:
    """Counts, lag and the latest failures of the outbox."""
    status = OutboxStatus()
    for name, count in s.execute(select(OutboxEntry.status, func.count())
                                 .group_by(OutboxEntry.status)):
        if name in ("pending", "failed", "done"):
            setattr(status, name, int(count))
    status.retrying = int(s.scalar(select(func.count()).select_from(OutboxEntry).where(
        OutboxEntry.status == "pending", OutboxEntry.attempts > 0)) or 0)
    oldest = as_utc(s.scalar(select(func.min(OutboxEntry.created_at))
                             .where(OutboxEntry.status == "pending")))
    if oldest is not None:
        status.oldest_pending = oldest
        status.lag_seconds = max(0.0, (utcnow() - oldest).total_seconds())
    rows = s.scalars(select(OutboxEntry).where(OutboxEntry.last_error.is_not(None),
                                               OutboxEntry.status != "done")
                     .order_by(OutboxEntry.last_attempt_at.desc()).limit(failures))
    status.failures = [{"aip": r.aip_uuid, "op": r.op, "status": r.status,
                        "attempts": r.attempts, "error": r.last_error,
                        "last_attempt": (as_utc(r.last_attempt_at).isoformat()
                                         if r.last_attempt_at else None)} for r in rows]
    return status


def aips_enqueued_since(s: Session, since: datetime) -> Sequence[str]:
    """AIPs with outbox entries created at or after ``since`` (a reindex's catch-up list)."""
    return list(s.scalars(select(OutboxEntry.aip_uuid).where(OutboxEntry.created_at >= since)
                          .distinct()))


def get_state(s: Session, name: str) -> dict[str, Any] | None:
    """The value of a named index-state record, or None."""
    row = s.get(IndexState, name)
    return dict(row.value) if row is not None else None


def set_state(s: Session, name: str, value: dict[str, Any] | None) -> None:
    """Write (or, with None, remove) a named index-state record."""
    row = s.get(IndexState, name)
    if value is None:
        if row is not None:
            s.delete(row)
        return
    if row is None:
        s.add(IndexState(name=name, value=value, updated_at=utcnow()))
    else:
        row.value, row.updated_at = value, utcnow()
