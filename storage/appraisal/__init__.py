"""Appraisal and disposition (鉴定与销毁).

Reaching the end of a 保管期限 never deletes anything: it puts the AIP before the appraisal
committee. :mod:`~storage.appraisal.due` lists what is due; :mod:`~storage.appraisal.batches`
is the committee's workflow (batches, decisions, approval by another person, execution before a
witness, holds) and :mod:`~storage.appraisal.models` its tables, tombstones among them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from policies.lazy import lazy_exports

_API = {
    # due
    "DueAip": "due",
    "due_counts": "due",
    "retention_due": "due",
    # batches
    "AppraisalRefused": "batches",
    "DECISION_LABELS": "batches",
    "DISPOSAL_DECISIONS": "batches",
    "ExecutionReport": "batches",
    "OPEN_DECISIONS": "batches",
    "STATUS_LABELS": "batches",
    "TOMBSTONE_OBJECT": "batches",
    "active_holds": "batches",
    "add_hold": "batches",
    "approve": "batches",
    "batch_summary": "batches",
    "decide": "batches",
    "destroy_aip": "batches",
    "execute": "batches",
    "list_batches": "batches",
    "list_holds": "batches",
    "premis_events": "batches",
    "propose": "batches",
    "reject": "batches",
    "remove_hold": "batches",
    "submit": "batches",
    "restore_tombstones": "batches",
    # relock
    "retention_version": "relock",
    "store_tombstone": "batches",
    "stored_tombstones": "batches",
    "tombstone_json": "batches",
    "tombstones": "batches",
    # models
    "AppraisalBatch": "models",
    "AppraisalEntry": "models",
    "Hold": "models",
    "Tombstone": "models",
}

__all__ = sorted(_API)
__getattr__, __dir__ = lazy_exports(__name__, _API)

if TYPE_CHECKING:  # what static tools see; nothing is imported at run time
    from storage.appraisal.due import DueAip, due_counts, retention_due
    from storage.appraisal.batches import (
        DECISION_LABELS, DISPOSAL_DECISIONS, OPEN_DECISIONS, STATUS_LABELS, TOMBSTONE_OBJECT,
        AppraisalRefused, ExecutionReport, active_holds, add_hold, approve, batch_summary,
        decide, destroy_aip, execute, list_batches, list_holds, premis_events, propose,
        reject, remove_hold,
        submit, restore_tombstones, store_tombstone, stored_tombstones, tombstone_json,
        tombstones,
    )
    from storage.appraisal.models import AppraisalBatch, AppraisalEntry, Hold, Tombstone
    from storage.appraisal.relock import retention_version
