"""WORM: retention (保管期限) as storage locks, and Dangan's refusal to delete retained AIPs.

The retention decision recorded with each AIP becomes a lock on every copy:

=============  ===========================================================================
保管期限        lock
=============  ===========================================================================
永久 (Y)        a legal hold (``[storage] permanent_lock = "legal-hold"``, the default), or a
                retain-until date 100 years ahead (``"far-future"``), extended by re-locking
D30, D10        retain-until = the end of the expiry day (China Standard Time), in the mode
                ``[storage] worm_mode`` (COMPLIANCE, the default, or GOVERNANCE)
none, expired   no lock: expiry starts appraisal (鉴定); deletion still needs a decision
=============  ===========================================================================

On an S3 bucket with Object Lock the server enforces the lock (``enforced_by = "server"``);
elsewhere only Dangan does (``"catalogue"``). Either way each applied lock is recorded in the
``retention_locks`` table, and :func:`deletion_refusal` refuses to delete an AIP while its
retention period runs, it is permanent, or any copy's lock is in force — on every backend.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from policies.config import Settings
from policies.errors import ConfigError, ObjectLocked
from storage.catalogue import models
from storage.locations import Location, RetentionLock
from storage.catalogue import Base

CHINA = timezone(timedelta(hours=8), "CST")
PERMANENT_YEARS = 100
MODES = ("COMPLIANCE", "GOVERNANCE")
PERMANENT_LOCKS = ("legal-hold", "far-future")


class RetentionLockRecord(Base):
    """A lock applied to one copy of an AIP, and who enforces it (``server`` or ``catalogue``)."""

    __tablename__ = "retention_locks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    aip_uuid: Mapped[str] = mapped_column(ForeignKey("aips.uuid"), index=True)
    location: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(16))
    retain_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    legal_hold: Mapped[bool] = mapped_column(Boolean, default=False)
    enforced_by: Mapped[str] = mapped_column(String(16))
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    __table_args__ = (UniqueConstraint("aip_uuid", "location"),)

    def lock(self) -> RetentionLock:
        """The recorded lock as a :class:`RetentionLock`."""
        until = self.retain_until
        if until is not None and until.tzinfo is None:   # SQLite drops the zone
            until = until.replace(tzinfo=timezone.utc)
        return RetentionLock(self.mode, until, self.legal_hold)


@dataclass(frozen=True)
class AppliedLock:
    """A lock put on one copy: the location's name, the lock, and who enforces it."""

    location: str
    lock: RetentionLock
    enforced_by: str


@dataclass(frozen=True)
class WormSettings:
    """The WORM configuration: lock mode and how permanent records are locked."""

    mode: str = "COMPLIANCE"
    permanent: str = "legal-hold"

    @classmethod
    def from_settings(cls, settings: Settings) -> "WormSettings":
        """Read ``[storage] worm_mode`` and ``permanent_lock``.

        Raises:
            ConfigError: a value outside the allowed ones.
        """
        mode = str(settings.get("storage", "worm_mode")).upper()
        permanent = str(settings.get("storage", "permanent_lock"))
        if mode not in MODES:
            raise ConfigError(f"[storage] worm_mode = {mode!r}: use COMPLIANCE or GOVERNANCE")
        if permanent not in PERMANENT_LOCKS:
            raise ConfigError(f"[storage] permanent_lock = {permanent!r}: use "
                              "legal-hold or far-future")
        return cls(mode, permanent)


def end_of_day(day: date) -> datetime:
    """The first moment after ``day`` in China Standard Time (an expiry day is kept whole)."""
    return datetime.combine(day + timedelta(days=1), time(0), CHINA)


def lock_for(period: str | None, expiry: date | str | None, worm: WormSettings,
             now: datetime | None = None) -> RetentionLock | None:
    """The lock a record's retention asks for.

    Arguments:
        period: the 保管期限 code (``Y``, ``D30``, ``D10``) or None.
        expiry: the last day of the period (None for a permanent one).
        worm: mode and permanent-lock choice.
        now: the current time (for tests).

    Returns:
        The lock, or None when there is no retention or it has already expired.

    >>> w = WormSettings()
    >>> lock_for("Y", None, w).legal_hold
    True
    >>> lock_for("D10", "2046-12-31", w).retain_until.isoformat()
    '2047-01-01T00:00:00+08:00'
    >>> lock_for("D10", "2020-12-31", w) is None
    True
    """
    now = now or datetime.now(timezone.utc)
    if not period:
        return None
    if isinstance(expiry, str):
        expiry = date.fromisoformat(expiry)
    if expiry is None:
        if worm.permanent == "legal-hold":
            return RetentionLock(worm.mode, None, True)
        ahead = now.replace(year=now.year + PERMANENT_YEARS, day=min(now.day, 28))
        return RetentionLock(worm.mode, ahead, False)
    until = end_of_day(expiry)
    return RetentionLock(worm.mode, until, False) if until > now else None


def lock_for_aip(aip: models.Aip, worm: WormSettings) -> RetentionLock | None:
    """The lock for a catalogued AIP (from its retention period and expiry date)."""
    return lock_for(aip.retention_period, aip.expiry_date, worm)


def apply_lock(location: Location, uuid: str, lock: RetentionLock | None) -> AppliedLock | None:
    """Lock one published copy; return what was applied (None when there is no lock)."""
    if lock is None:
        return None
    return AppliedLock(location.name, lock, location.set_retention(uuid, lock))


def record_locks(session: Session, uuid: str, applied: Iterable[AppliedLock | None]) -> None:
    """Record applied locks in the catalogue (inside the caller's transaction)."""
    for entry in applied:
        if entry is None:
            continue
        row = session.scalars(select(RetentionLockRecord).where(
            RetentionLockRecord.aip_uuid == uuid,
            RetentionLockRecord.location == entry.location)).first()
        if row is None:
            row = RetentionLockRecord(aip_uuid=uuid, location=entry.location)
            session.add(row)
        until = entry.lock.retain_until
        # in UTC: SQLite keeps no zone, and the lock is read back as UTC (see lock())
        row.mode = entry.lock.mode
        row.retain_until = until.astimezone(timezone.utc) if until is not None else None
        row.legal_hold, row.enforced_by = entry.lock.legal_hold, entry.enforced_by
        row.applied_at = datetime.now(timezone.utc).replace(microsecond=0)


def forget_lock(session: Session, uuid: str, location: str) -> None:
    """Drop the record of a copy's lock once the copy itself is gone."""
    for row in session.scalars(select(RetentionLockRecord).where(
            RetentionLockRecord.aip_uuid == uuid, RetentionLockRecord.location == location)):
        session.delete(row)


def recorded_locks(session: Session, uuid: str) -> list[RetentionLockRecord]:
    """The recorded locks of every copy of an AIP."""
    return list(session.scalars(select(RetentionLockRecord)
                                .where(RetentionLockRecord.aip_uuid == uuid)
                                .order_by(RetentionLockRecord.location)))


def deletion_refusal(aip: models.Aip, locks: Iterable[RetentionLock],
                     today: date | None = None, now: datetime | None = None) -> str | None:
    """Why an AIP may not be deleted now, or None when nothing retains it.

    Arguments:
        aip: the catalogue row (its 保管期限 and expiry date).
        locks: the locks of its copies (recorded and read from the servers).
    """
    now = now or datetime.now(timezone.utc)
    today = today or now.astimezone(CHINA).date()
    if aip.retention_period and aip.expiry_date is None:
        return f"保管期限 {aip.retention_period}: kept permanently"
    if aip.expiry_date is not None and aip.expiry_date >= today:
        return f"保管期限 {aip.retention_period} runs until {aip.expiry_date.isoformat()}"
    held = [lock.describe() for lock in locks if lock.in_force(now)]
    if held:
        return "a copy is locked: " + "; ".join(held)
    return None


def guard_deletion(session: Session, aip: models.Aip, locations: Iterable[Location]) -> None:
    """Refuse (raise) the deletion of a retained AIP, whatever its copies are stored on.

    The catalogue's retention decides first; the locks recorded for its copies and those
    the servers hold now are checked too, so a lock set outside Dangan also counts.

    Raises:
        ObjectLocked: the AIP is retained; the message says why.
    """
    locks = [row.lock() for row in recorded_locks(session, aip.uuid)]
    for location in locations:
        lock = location.get_retention(aip.uuid) if location.has_aip(aip.uuid) else None
        if lock is not None:
            locks.append(lock)
    reason = deletion_refusal(aip, locks)
    if reason is not None:
        raise ObjectLocked(f"AIP {aip.uuid} is retained, deletion refused: {reason}")
