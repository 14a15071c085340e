"""The receipt report (检测报告) of a transfer: JSON for machines, printable Chinese HTML for
the bureau's file. It is written beside the transfer's record in ``$DANGAN_HOME/reports`` and
stored inside every AIP made from the transfer (``data/logs/``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from ingest import jsontext
from ingest.findings import PROPERTIES, CheckResult
from metadata_profiles.text import shown_text
from storage.locations import private_dir

TEMPLATES = Path(__file__).with_name("templates")
DECISIONS = {"accepted": "通过，予以接收", "rejected": "不通过，退回移交单位",
             "partially-accepted": "部分通过：合格的档案单元予以接收，其余退回重新移交"}
STATUS_ZH = {"passed": "通过", "failed": "未通过", "not-checked": "未检测"}


@dataclass
class Report:
    """Everything the receipt report says.

    Attributes:
        transfer: what was received (id, source, kind, counts, fingerprint, profile).
        checks: every check's result, in report order.
        tools: tool name -> version (signature versions included).
        dangan_version: the software that wrote it.
        units: the AIPs made (or planned) from the transfer.
        rejected_units: units refused under ``--accept-valid``, with their problems.
        policies: policy and profile identifiers in force.
        decision: ``accepted``, ``rejected`` or ``partially-accepted`` (None: from the checks).
        normalisation: the derivatives made at ingest, kept or not (ingest.normalise); the
            report lists them only when there are any.
    """

    transfer: dict[str, Any]
    checks: list[CheckResult]
    tools: dict[str, str]
    dangan_version: str
    units: list[dict[str, Any]] = field(default_factory=list)
    rejected_units: list[dict[str, Any]] = field(default_factory=list)
    policies: dict[str, str] = field(default_factory=dict)
    decision: str | None = None
    normalisation: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rejected(self) -> bool:
        """Whether any check rejects (part of) the transfer."""
        return any(c.rejects for c in self.checks)

    def final_decision(self) -> str:
        """The decision the report states."""
        return self.decision or ("rejected" if self.rejected else "accepted")

    def counts(self) -> dict[str, int]:
        """How many checks passed, failed and were not checked."""
        counts = Counter(c.status for c in self.checks)
        return {s: counts.get(s, 0) for s in ("passed", "failed", "not-checked")}

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data (the JSON report)."""
        counts = Counter(c.status for c in self.checks)
        by_property: dict[str, Counter] = {name: Counter() for name in PROPERTIES.values()}
        for check in self.checks:
            by_property.setdefault(check.property_name, Counter())[check.status] += 1
        decision = self.final_decision()
        data = {
            "transfer": self.transfer,
            "decision": decision,
            "decision_zh": DECISIONS[decision],
            "counts": {s: counts.get(s, 0) for s in ("passed", "failed", "not-checked")},
            "warnings": sum(1 for c in self.checks if c.status == "failed" and not c.rejects),
            "by_property": {k: dict(v) for k, v in by_property.items() if v},
            "checks": [c.to_dict() for c in self.checks],
            "units": self.units,
            "rejected_units": self.rejected_units,
            "tools": self.tools,
            "policies": self.policies,
            "dangan_version": self.dangan_version,
            "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        if self.normalisation:
            data["normalisation"] = self.normalisation
        return data

    def failures(self) -> list[CheckResult]:
        """The checks that reject (part of) the transfer."""
        return [c for c in self.checks if c.rejects]


@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                             autoescape=jinja2.select_autoescape(["html"]))
    return env.get_template("report.html")


def render_html(data: dict[str, Any]) -> str:
    """The printable Chinese HTML report (characters HTML cannot show written as escapes)."""
    return shown_text(_template().render(r=data, status_zh=STATUS_ZH), keep="\n\t\r",
                      backslash=False)


def write_report(report: Report, folder: Path) -> tuple[Path, Path, dict[str, Any]]:
    """Write ``ingest-report.json`` and ``ingest-report.html`` into ``folder`` (created
    owner-only: a report names households and their problems)."""
    private_dir(folder)
    data = report.to_dict()
    json_path, html_path = folder / "ingest-report.json", folder / "ingest-report.html"
    # indented down to each check; each problem of a check on one line
    # a lone surrogate (an undecodable byte of the sender's) is written as its JSON escape
    json_path.write_bytes(jsontext.dumps(data, depth=4).encode("utf-8", "backslashreplace"))
    html_path.write_text(render_html(data), encoding="utf-8")
    return json_path, html_path, data
