"""Fixity: auditing stored copies (quick and full checks, checkpointed, in parallel),
repairing bad copies from verified ones, PREMIS evidence, auditors' reports and API keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

from policies.lazy import lazy_exports

_API = {
    "AuditRequest": "audit", "AuditResult": "audit", "Auditor": "audit",
    "Finding": "compare", "KIND_LABELS": "compare",
    "CheckOutcome": "records", "as_utc": "records", "describe_findings": "records",
    "summarise_kinds": "records",
    "RepairResult": "repair", "Repairer": "repair",
    "premis_xml": "premis",
    "build_report": "report", "write_reports": "report",
    "apikeys": "apikeys", "hashing": "hashing", "models": "models", "readahead": "readahead",
    "scan": "scan",
    "AuditAnchor": "models", "CopyCheck": "models", "RepairRequest": "models",
}

__all__ = sorted(_API)
__getattr__, __dir__ = lazy_exports(__name__, _API)

if TYPE_CHECKING:  # what static tools see; nothing is imported at run time
    from storage.fixity import apikeys, hashing, models, readahead, scan
    from storage.fixity.audit import Auditor, AuditRequest, AuditResult
    from storage.fixity.compare import KIND_LABELS, Finding
    from storage.fixity.models import AuditAnchor, CopyCheck, RepairRequest
    from storage.fixity.premis import premis_xml
    from storage.fixity.records import CheckOutcome, as_utc, describe_findings, summarise_kinds
    from storage.fixity.repair import Repairer, RepairResult
    from storage.fixity.report import build_report, write_reports
