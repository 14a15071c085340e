"""Fixity reports for auditors: per AIP and copy, the last full check, its outcome and age,
and overall coverage ("every copy fully checked within its interval": yes or no, and which
copies are not), as HTML (Chinese), CSV and JSON.

Only full checks count for coverage; the read-back verification of a copy when it was
written (ingest, replication, repair) is a full read and counts, labelled as such. Quick
checks are listed in their own columns and never count.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select

from policies import Settings, load_fixity_policy
from storage.catalogue import models as m
from storage.catalogue import Catalogue
from storage.fixity.models import RepairRequest
from storage.fixity.records import (
    as_utc,
    last_full_checks,
    last_quick_checks,
    precise_now,
    tool_name,
)
from storage.locations import private_dir

TEMPLATES = Path(__file__).with_name("templates")
SOURCE_LABELS = {"audit": "定期审计", "api": "审计接口 (check_fixity)", "repair": "修复后复核",
                 "write": "写入时回读校验"}
OUTCOME_LABELS = {"pass": "通过", "present": "快速校验：文件齐全、大小相符（未读取内容，非固定性校验）",
                  "fail": "未通过", "error": "未能完成", None: "—"}


@dataclass
class CopyCoverage:
    """One copy's row in the report."""

    aip_uuid: str
    archival_code: str | None
    label: str
    location: str
    copy_status: str
    interval_days: int
    last_full_at: str | None
    last_full_outcome: str | None
    last_full_source: str | None
    age_days: int | None
    last_quick_at: str | None
    last_quick_outcome: str | None
    covered: bool
    reason: str


@dataclass
class CoverageReport:
    """The whole report."""

    generated_at: str
    tool: str
    intervals: dict[str, int]
    default_interval: int
    copies: list[CopyCoverage] = field(default_factory=list)
    open_repairs: list[dict[str, Any]] = field(default_factory=list)
    unrepairable: list[dict[str, Any]] = field(default_factory=list)

    @property
    def covered(self) -> bool:
        """Every copy fully checked, intact, within its interval."""
        return bool(self.copies) and all(c.covered for c in self.copies)

    @property
    def not_covered(self) -> list[CopyCoverage]:
        return [c for c in self.copies if not c.covered]

    def to_dict(self) -> dict[str, Any]:
        """Plain data (the JSON report)."""
        return {"generated_at": self.generated_at, "tool": self.tool,
                "coverage": {"all_copies_fully_checked_within_interval": self.covered,
                             "copies": len(self.copies), "covered": len(self.copies)
                             - len(self.not_covered), "not_covered": len(self.not_covered),
                             "default_interval_days": self.default_interval,
                             "location_interval_days": self.intervals},
                "not_covered": [asdict(c) for c in self.not_covered],
                "copies": [asdict(c) for c in self.copies],
                "open_repairs": self.open_repairs, "unrepairable": self.unrepairable}


def build_report(catalogue: Catalogue, settings: Settings, now: datetime | None = None) -> CoverageReport:
    """Gather the report from the catalogue."""
    now = now or precise_now()
    policy = load_fixity_policy(settings)
    report = CoverageReport(now.isoformat(), tool_name(), dict(policy.location_intervals),
                            policy.full_interval_days)
    with catalogue.session() as s:
        rows = s.execute(select(m.Aip.uuid, m.Aip.archival_code, m.Aip.label, m.Copy.location,
                                m.Copy.status, m.Copy.verified_at)
                         .join(m.Copy, m.Copy.aip_uuid == m.Aip.uuid)
                         .where(m.Aip.status == "UPLOADED")
                         .order_by(m.Aip.archival_code, m.Aip.uuid, m.Copy.location)).all()
        fulls, quicks = last_full_checks(s), last_quick_checks(s)
        repairs = s.scalars(select(RepairRequest).where(
            RepairRequest.status.in_(("pending", "unrepairable", "failed")))
            .order_by(RepairRequest.created_at)).all()
    for uuid, code, label, location, status, verified in rows:
        report.copies.append(_copy_row(uuid, code, label, location, status, as_utc(verified),
                                       fulls.get((uuid, location)), quicks.get((uuid, location)),
                                       policy.interval_for(location), now))
    for row in repairs:
        entry = {"repair": row.id, "aip": row.aip_uuid, "location": row.location,
                 "status": row.status, "created_at": as_utc(row.created_at).isoformat(),
                 "detail": row.detail}
        (report.unrepairable if row.status == "unrepairable" else report.open_repairs).append(entry)
    return report


def _copy_row(uuid: str, code: str | None, label: str, location: str, status: str,
              verified: datetime | None, full: Any, quick: Any, interval: int,
              now: datetime) -> CopyCoverage:
    at, outcome, source = None, None, None
    if full is not None:
        at, outcome, source = as_utc(full.finished_at), full.outcome, full.purpose
    if verified is not None and (at is None or verified > at) and status == "verified":
        at, outcome, source = verified, "pass", "write"
    age = max(0, (now - at).days) if at else None
    if at is None:
        reason = "从未进行全量校验 (never fully checked)"
    elif outcome != "pass" or status != "verified":
        reason = f"最近一次全量校验未通过，副本状态 {status} (last full check failed)"
    elif age is not None and age >= interval:
        reason = f"最近一次全量校验已过 {age} 天，超过 {interval} 天 (overdue)"
    else:
        reason = ""
    return CopyCoverage(uuid, code, label, location, status, interval,
                        at.isoformat() if at else None, outcome, source, age,
                        as_utc(quick.finished_at).isoformat() if quick is not None else None,
                        quick.outcome if quick is not None else None, not reason, reason)


CSV_COLUMNS = [("aip_uuid", "AIP"), ("archival_code", "档号"), ("label", "题名"),
               ("location", "存储位置"), ("copy_status", "副本状态"),
               ("last_full_at", "最近全量校验时间"), ("last_full_outcome", "全量校验结果"),
               ("last_full_source", "校验来源"), ("age_days", "距今天数"),
               ("interval_days", "校验周期（天）"), ("covered", "在周期内且完好"),
               ("last_quick_at", "最近快速校验时间（不计入覆盖率）"),
               ("last_quick_outcome", "快速校验结果"), ("reason", "说明")]


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """A value as a CSV cell a spreadsheet program opens safely: text a program would run as
    a formula (a submitted 题名 ``=HYPERLINK(…)``) is prefixed with ``'`` (OWASP's advice
    against CSV injection); numbers are left as they are.

    >>> print(csv_cell('=HYPERLINK("x")'), csv_cell("-1"), csv_cell(-1), csv_cell("档案"))
    '=HYPERLINK("x") '-1 -1 档案
    """
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def write_reports(report: CoverageReport, folder: Path) -> dict[str, Path]:
    """Write ``fixity-report.html``, ``.csv`` and ``.json`` into ``folder`` (created
    owner-only)."""
    private_dir(folder)
    paths = {kind: folder / f"fixity-report.{kind}" for kind in ("html", "csv", "json")}
    paths["json"].write_text(json.dumps(report.to_dict(), ensure_ascii=False, indent=2),
                             encoding="utf-8")
    with open(paths["csv"], "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([title for _, title in CSV_COLUMNS])
        for row in report.copies:
            data = asdict(row)
            writer.writerow([csv_cell("是" if data[k] is True else "否" if data[k] is False
                                      else "" if data[k] is None else data[k])
                             for k, _ in CSV_COLUMNS])
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    html = env.get_template("fixity-report.html").render(
        report=report, outcome_labels=OUTCOME_LABELS, source_labels=SOURCE_LABELS)
    paths["html"].write_text(html, encoding="utf-8")
    return paths
