"""The auditors' view of fixity: every stored copy with its last full check, the files a
failed check found damaged (path and kind of damage), and where the repair stands; and the
alert the dashboard raises while any copy is damaged or cannot be repaired."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import func, select

from policies import Settings
from storage import fixity
from storage.catalogue import models as m
from storage.catalogue import Catalogue


def _findings(check: Any) -> list[dict[str, Any]]:
    out = []
    for f in check.findings or []:
        kind = f.get("kind", "")
        out.append({"path": f.get("path", ""), "kind": kind,
                    "kind_name": fixity.KIND_LABELS.get(kind, kind),
                    "algorithm": f.get("algorithm", ""), "expected": f.get("expected", ""),
                    "actual": f.get("actual", ""), "message": f.get("message", "")})
    return out


def overview(catalogue: Catalogue, settings: Settings) -> dict[str, Any]:
    """The fixity page's content.

    Returns:
        ``report`` (:class:`storage.fixity.CoverageReport`), ``copies`` (one dict per copy:
        the report's row plus ``findings`` of its last full check when it failed and
        ``repair``, the status of the copy's latest repair request or None) and ``damaged``
        (the copies that are not intact, damaged ones first).
    """
    report = fixity.build_report(catalogue, settings)
    with catalogue.session() as s:
        latest: dict[tuple[str, str], Any] = {}
        for check in s.scalars(select(fixity.CopyCheck).where(
                fixity.CopyCheck.depth == "full", fixity.CopyCheck.outcome != "error")
                .order_by(fixity.CopyCheck.finished_at)):
            latest[(check.aip_uuid, check.location)] = check
        repairs: dict[tuple[str, str], str] = {}
        for row in s.scalars(select(fixity.RepairRequest)
                             .order_by(fixity.RepairRequest.created_at)):
            repairs[(row.aip_uuid, row.location)] = row.status
    copies = []
    for row in report.copies:
        key = (row.aip_uuid, row.location)
        check = latest.get(key)
        failed = check is not None and check.outcome == "fail"
        copies.append({**asdict(row), "findings": _findings(check) if failed else [],
                       "checked_at": check.finished_at if check is not None else None,
                       "repair": repairs.get(key)})
    damaged = [c for c in copies if c["copy_status"] != "verified" or c["findings"]]
    damaged.sort(key=lambda c: (c["repair"] != "unrepairable", c["archival_code"] or ""))
    return {"report": report, "copies": copies, "damaged": damaged}


def report_html(catalogue: Catalogue, settings: Settings) -> str:
    """The auditors' HTML fixity report (the one ``dangan fixity report`` writes)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="dangan-fixity-") as folder:
        paths = fixity.write_reports(fixity.build_report(catalogue, settings), Path(folder))
        return paths["html"].read_text(encoding="utf-8")


def alert(catalogue: Catalogue) -> dict[str, int]:
    """How many copies are damaged (any state but verified) and how many copies' latest repair found
    no intact source (the dashboard turns red while either is above zero)."""
    with catalogue.session() as s:
        damaged = s.scalar(select(func.count()).select_from(m.Copy)
                           .where(m.Copy.status != "verified")) or 0
        latest: dict[tuple[str, str], str] = {}
        for aip, location, status in s.execute(
                select(fixity.RepairRequest.aip_uuid, fixity.RepairRequest.location,
                       fixity.RepairRequest.status).order_by(fixity.RepairRequest.created_at)):
            latest[(aip, location)] = status
    unrepairable = sum(1 for status in latest.values() if status == "unrepairable")
    return {"damaged": damaged, "unrepairable": unrepairable}
