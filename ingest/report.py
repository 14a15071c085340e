"""The receipt report (检测报告) of a transfer, as JSON for machines and HTML for the file."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from ingest.findings import CheckResult

TEMPLATES = Path(__file__).with_name("templates")


@dataclass
class Report:
    """Everything the receipt report says."""

    transfer: dict[str, Any]
    checks: list[CheckResult]
    tools: dict[str, str]
    dangan_version: str
    units: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rejected(self) -> bool:
        return any(c.rejects for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        counts = Counter(c.status for c in self.checks)
        return {
            "transfer": self.transfer,
            "decision": "rejected" if self.rejected else "accepted",
            "counts": {s: counts.get(s, 0) for s in ("passed", "failed", "not-checked")},
            "checks": [c.to_dict() for c in self.checks],
            "units": self.units,
            "tools": self.tools,
            "dangan_version": self.dangan_version,
            "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }

    def failures(self) -> list[CheckResult]:
        """The checks that reject the transfer."""
        return [c for c in self.checks if c.rejects]


@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                             autoescape=jinja2.select_autoescape(["html"]))
    return env.get_template("report.html")


def render_html(data: dict[str, Any]) -> str:
    """The printable Chinese HTML report."""
    return _template().render(r=data)


def write_report(report: Report, folder: Path) -> tuple[Path, Path, dict[str, Any]]:
    """Write ``ingest-report.json`` and ``ingest-report.html`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    data = report.to_dict()
    json_path, html_path = folder / "ingest-report.json", folder / "ingest-report.html"
    json_path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    html_path.write_text(render_html(data), encoding="utf-8")
    return json_path, html_path, data
