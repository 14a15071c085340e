"""Retention due: the AIPs whose 保管期限 ends, listed for appraisal (鉴定).

Reaching the end of a period never deletes anything: it puts the AIP before the appraisal
committee, which may extend the period (recorded with the old value in the audit log) or
decide on destruction through the normal, audited deletion.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date

from sqlalchemy import select

from storage.catalogue import models as m
from storage.catalogue import Catalogue


@dataclass(frozen=True)
class DueAip:
    """One AIP whose retention period ends on or before the date asked about."""

    uuid: str
    archival_code: str | None
    label: str
    retention_period: str
    expiry_date: str
    open_date: str | None
    control_id: str | None

    def to_dict(self) -> dict:
        """Plain data for JSON output."""
        return asdict(self)


def retention_due(catalogue: Catalogue, before: date) -> list[DueAip]:
    """AIPs (stored, not deleted) whose retention expires on or before ``before``, oldest first.

    Permanent (Y) AIPs have no expiry date and never appear.
    """
    with catalogue.session() as s:
        rows = s.scalars(select(m.Aip).where(m.Aip.status == "UPLOADED",
                                             m.Aip.expiry_date.is_not(None),
                                             m.Aip.expiry_date <= before)
                         .order_by(m.Aip.expiry_date, m.Aip.archival_code, m.Aip.uuid)).all()
    return [DueAip(a.uuid, a.archival_code, a.label, a.retention_period or "",
                   a.expiry_date.isoformat(), a.open_date.isoformat() if a.open_date else None,
                   a.control_id) for a in rows]


def due_counts(catalogue: Catalogue, until: date) -> dict[str, int]:
    """How many stored AIPs reach the end of their 保管期限, and how many their 开放 date, by
    ``until`` (the dashboard asks for the end of this year), and how many of those are not yet
    in an open appraisal batch."""
    from sqlalchemy import func

    from storage.appraisal.batches import OPEN_BATCHES
    from storage.appraisal.models import AppraisalBatch, AppraisalEntry

    with catalogue.session() as s:
        busy = (select(AppraisalEntry.aip_uuid)
                .join(AppraisalBatch, AppraisalBatch.id == AppraisalEntry.batch_id)
                .where(AppraisalBatch.status.in_(OPEN_BATCHES)))
        live = m.Aip.status == "UPLOADED"

        def count(*where) -> int:
            return int(s.scalar(select(func.count()).select_from(m.Aip).where(live, *where))
                       or 0)

        expiring = (m.Aip.expiry_date.is_not(None), m.Aip.expiry_date <= until)
        opening = (m.Aip.open_date.is_not(None), m.Aip.open_date <= until,
                   m.Aip.control_id != "开放")
        return {"retention": count(*expiring),
                "retention_unbatched": count(*expiring, m.Aip.uuid.not_in(busy)),
                "open_review": count(*opening),
                "open_review_unbatched": count(*opening, m.Aip.uuid.not_in(busy))}
