"""Fixity: auditing stored copies (quick and full checks, checkpointed, in parallel),
repairing bad copies from verified ones, PREMIS evidence and auditors' reports."""

from storage.fixity.audit import Auditor, AuditRequest, AuditResult
from storage.fixity.compare import Finding
from storage.fixity.records import CheckOutcome
from storage.fixity.repair import Repairer, RepairResult

__all__ = ["AuditRequest", "AuditResult", "Auditor", "CheckOutcome", "Finding", "RepairResult",
           "Repairer"]
