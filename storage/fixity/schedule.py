"""Which copies an audit run reads: those due by the fixity policy, within the day's budget.

A copy is *due* when its last full verification (an audit, a repair or the read-back at
ingest) is older than its location's interval, or when it is known to be damaged. With a
daily byte budget, due copies are taken oldest first until the budget is spent, and spare
budget is used to read the next-oldest copies *ahead* of schedule, which spreads full reads
evenly over the days instead of letting them all fall due on the same day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select

from policies.loader import FixityPolicy, StoragePolicy
from storage.catalogue import models as m
from storage.catalogue import Catalogue
from storage.fixity.models import CopyCheck
from storage.fixity.records import as_utc

AHEAD_MIN_AGE = timedelta(days=1)   # never re-read a copy ahead of schedule the same day


@dataclass(frozen=True)
class PlannedCopy:
    """A copy chosen for a run, and why (``damaged``, ``due``, ``ahead``, ``requested``)."""

    aip_uuid: str
    location: str
    bytes: int
    reason: str
    last_full: datetime | None = None


@dataclass
class Plan:
    """The copies to check and what the budget left out."""

    copies: list[PlannedCopy] = field(default_factory=list)
    deferred: list[PlannedCopy] = field(default_factory=list)   # due, but over the budget
    budget: int = 0
    read_today: int = 0

    @property
    def bytes(self) -> int:
        return sum(c.bytes for c in self.copies)


def _candidates(catalogue: Catalogue, aip: str | None,
                location: str | None) -> list[tuple[str, str, int, str, datetime | None]]:
    with catalogue.session() as s:
        query = (select(m.Copy.aip_uuid, m.Copy.location, m.Aip.size, m.Copy.status,
                        m.Copy.verified_at)
                 .join(m.Aip, m.Aip.uuid == m.Copy.aip_uuid)
                 .where(m.Aip.status == "UPLOADED")
                 .order_by(m.Aip.created_at, m.Copy.aip_uuid, m.Copy.location))
        if aip:
            query = query.where(m.Copy.aip_uuid == aip)
        if location:
            query = query.where(m.Copy.location == location)
        return [(a, loc, int(size or 0), status, as_utc(at))
                for a, loc, size, status, at in s.execute(query).all()]


def bytes_read_today(catalogue: Catalogue, now: datetime) -> int:
    """Bytes read by full checks since midnight (UTC) today."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    with catalogue.session() as s:
        total = s.scalar(select(func.sum(CopyCheck.bytes_read))
                         .where(CopyCheck.depth == "full", CopyCheck.started_at >= midnight))
    return int(total or 0)


def plan_copies(catalogue: Catalogue, policy: FixityPolicy, storage: StoragePolicy, *,
                now: datetime, depth: str = "full", aip: str | None = None,
                location: str | None = None, everything: bool = False) -> Plan:
    """Choose the copies of a run.

    Arguments:
        catalogue, policy, storage: where copies, intervals and locations come from.
        now: the time the plan is for.
        depth: ``quick`` checks are cheap: every copy in scope is taken, no budget.
        aip, location: restrict to one AIP or one location.
        everything: take every copy in scope, due or not (``--all``, or one AIP asked for).

    Returns:
        The plan, damaged copies first, then the oldest.
    """
    rows = _candidates(catalogue, aip, location)
    if depth == "quick" or everything or aip:
        reason = "requested" if (everything or aip) else "quick"
        return Plan([PlannedCopy(a, loc, size, reason, at) for a, loc, size, _s, at in rows])
    damaged, due, ahead = [], [], []
    for aip_uuid, name, size, status, verified in rows:
        interval = timedelta(days=policy.interval_for(name))
        if status != "verified":
            damaged.append(PlannedCopy(aip_uuid, name, size, "damaged", verified))
        elif verified is None or now - verified >= interval:
            due.append(PlannedCopy(aip_uuid, name, size, "due", verified))
        elif now - verified >= AHEAD_MIN_AGE:
            ahead.append(PlannedCopy(aip_uuid, name, size, "ahead", verified))
    oldest = (lambda c: (c.last_full is not None, c.last_full or now, c.aip_uuid, c.location))
    due.sort(key=oldest)
    ahead.sort(key=oldest)
    if policy.daily_byte_budget <= 0:
        return Plan(damaged + due)
    plan = Plan(budget=policy.daily_byte_budget, read_today=bytes_read_today(catalogue, now))
    remaining = plan.budget - plan.read_today
    for copy in damaged + due:
        if copy.bytes <= remaining or (not plan.copies and plan.read_today == 0):
            plan.copies.append(copy)
            remaining -= copy.bytes
        else:
            plan.deferred.append(copy)
    if not plan.deferred:
        for copy in ahead:
            if copy.bytes > remaining:
                break
            plan.copies.append(copy)
            remaining -= copy.bytes
    return plan
