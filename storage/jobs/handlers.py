"""Storage's job handlers for ``dangan worker`` (see :mod:`storage.jobs.worker`)."""

from __future__ import annotations

from typing import Any

from policies import Settings


def run_audit_job(settings: Settings, payload: dict[str, Any]) -> dict[str, Any]:
    """Audit fixity: ``depth`` (full|quick), one ``aip`` and/or ``location``, or what is due.

    Bad copies are a finished audit (its result lists them, the repair policy applies), not a
    failed job.

    Returns:
        The audit's summary, run id and exit code.
    """
    from storage.fixity import Auditor, AuditRequest

    request = AuditRequest(depth=str(payload.get("depth", "full")), aip=payload.get("aip"),
                           location=payload.get("location"),
                           everything=bool(payload.get("everything", False)),
                           actor=str(payload.get("actor", "worker")))
    with Auditor(settings) as auditor:
        result = auditor.run(request)
    return {"run": result.run_id, "exit_code": result.exit_code, **result.summary()}
