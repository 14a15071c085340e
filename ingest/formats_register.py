"""The formats risk register of the holdings (``dangan formats report``).

From the catalogue alone (no stored object is read): every logical file of the newest version
of every held AIP (status ``UPLOADED``), grouped by PRONOM PUID, with

* how many originals (``data/objects/…``) and how many bytes, in how many AIPs;
* how many of those originals already have a preservation copy (``data/preservation/…``) or
  an access copy (``data/access/…``) in the same version;
* what the format policy says at ingest (allow / warn / reject, ``formats.yaml``) and, when a
  preservation policy is given, which preservation rule applies and what it asks for;
* how many originals the preservation rule asks a copy of and do not have one yet: the files
  ``dangan migrate --puid`` would convert;
* the originals no tool identified, listed one by one.

A derivative names its source in the catalogue (``files.derived_from``) where that is
recorded; otherwise its path tells it (``data/preservation/a/b.doc.pdf`` was made from
``data/objects/a/b.doc``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

ORIGINALS = "data/objects/"
ROLE_PREFIXES = {"preservation": "data/preservation/", "access": "data/access/"}
UNIDENTIFIED = "未识别"


@dataclass(frozen=True)
class HeldFile:
    """One logical file of the newest version of a held AIP."""

    aip: str
    archival_code: str | None
    path: str
    size: int
    puid: str | None
    format_name: str | None
    derived_from: str | None = None


@dataclass
class FormatRow:
    """One PUID of the register."""

    puid: str | None
    format_name: str
    files: int = 0
    bytes: int = 0
    aips: set[str] = field(default_factory=set)
    with_preservation: int = 0
    with_access: int = 0
    needing_preservation: int = 0
    needing_access: int = 0
    ingest_policy: dict[str, str] = field(default_factory=dict)
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"puid": self.puid, "format_name": self.format_name, "files": self.files,
                "bytes": self.bytes, "aips": len(self.aips),
                "with_preservation_copy": self.with_preservation,
                "with_access_copy": self.with_access,
                "without_preservation_copy_the_rule_asks_for": self.needing_preservation,
                "without_access_copy_the_rule_asks_for": self.needing_access,
                "ingest_policy": self.ingest_policy,
                "preservation_rules": list(self.rules.values())}


def held_files(session: Any) -> Iterator[HeldFile]:
    """Every logical file of the newest version of every held AIP, in a few queries."""
    from sqlalchemy import func, select

    from storage.aip import is_version_object
    from storage.catalogue import models as m

    codes = dict(session.execute(select(m.Aip.uuid, m.Aip.archival_code)
                                 .where(m.Aip.status == "UPLOADED")).all())
    newest = dict(session.execute(select(m.AipVersion.aip_uuid, func.max(m.AipVersion.number))
                                  .group_by(m.AipVersion.aip_uuid)).all())
    cols = [m.File.aip_uuid, m.File.path, m.File.size, m.File.puid, m.File.format_name,
            m.File.derived_from]
    stored: dict[tuple[str, str], tuple] = {}
    for row in session.execute(select(*cols).join(m.Aip, m.Aip.uuid == m.File.aip_uuid)
                               .where(m.Aip.status == "UPLOADED")):
        aip, path = row[0], row[1]
        if aip not in newest:
            if not is_version_object(path):
                yield HeldFile(aip, codes.get(aip), path, row[2], row[3], row[4], row[5])
        else:
            stored[(aip, path)] = tuple(row)
    if not newest:
        return
    for aip, version, path, stored_path in session.execute(
            select(m.AipVersionFile.aip_uuid, m.AipVersionFile.version, m.AipVersionFile.path,
                   m.AipVersionFile.stored_path)
            .order_by(m.AipVersionFile.aip_uuid, m.AipVersionFile.path)):
        if aip not in codes or version != newest.get(aip):
            continue
        row = stored.get((aip, stored_path))
        if row is None:
            continue
        source = row[5]
        yield HeldFile(aip, codes[aip], path, row[2], row[3], row[4],
                       _logical_source(source) if source else None)


def _logical_source(source: str) -> str:
    """A source recorded as a stored object path of a version (``versions/v2-x/data/…``) as
    its logical path."""
    marker = source.find("data/")
    return source[marker:] if marker > 0 and source.startswith("versions/") else source


def source_of(held: HeldFile) -> tuple[str, str] | None:
    """(role, source path) of a derivative; None for an original or a metadata file."""
    for role, prefix in ROLE_PREFIXES.items():
        if held.path.startswith(prefix):
            if held.derived_from:
                return role, held.derived_from
            rel = held.path.removeprefix(prefix)
            stem = str(PurePosixPath(rel).with_suffix("")) if PurePosixPath(rel).suffix else rel
            return role, ORIGINALS + stem
    return None


RuleOf = Callable[[str | None, str], dict[str, Any] | None]
"""(puid, extension) -> the preservation rule that applies, as a dict with ``name``,
``preservation`` and ``access`` (each ``{"action": "keep"|"original"|"preservation"}`` or
``{"action": "convert", "target": …, "tool": …}``), or None when no rule names the format."""


def register(session: Any, format_policy: Any, rule_of: RuleOf | None = None) -> dict[str, Any]:
    """The risk register as a JSON-ready dict (see the module docstring)."""
    files = list(held_files(session))
    copies: dict[tuple[str, str], set[str]] = {}
    derivatives: dict[tuple[str, str | None], dict[str, Any]] = {}
    for f in files:
        found = source_of(f)
        if found:
            role, source = found
            copies.setdefault((f.aip, source), set()).add(role)
            d = derivatives.setdefault((role, f.puid), {
                "role": role, "puid": f.puid, "format_name": f.format_name or UNIDENTIFIED,
                "files": 0, "bytes": 0})
            d["files"] += 1
            d["bytes"] += f.size
    rows: dict[str | None, FormatRow] = {}
    unidentified: list[dict[str, Any]] = []
    aips: set[str] = set()
    for f in files:
        if not f.path.startswith(ORIGINALS):
            continue
        aips.add(f.aip)
        row = rows.get(f.puid)
        if row is None:
            row = rows[f.puid] = FormatRow(f.puid, f.format_name or UNIDENTIFIED)
        row.files += 1
        row.bytes += f.size
        row.aips.add(f.aip)
        extension = PurePosixPath(f.path).suffix.lower().lstrip(".")
        decision = format_policy.decide(f.puid, extension)
        row.ingest_policy = {"action": decision.action, "name": decision.name,
                             "reason": decision.reason}
        have = copies.get((f.aip, f.path), set())
        row.with_preservation += "preservation" in have
        row.with_access += "access" in have
        rule = rule_of(f.puid, extension) if rule_of else None
        if rule:
            row.rules.setdefault(rule["name"], rule)
            wants = {role for role in ("preservation", "access")
                     if rule.get(role, {}).get("action") == "convert"}
            row.needing_preservation += "preservation" in wants and "preservation" not in have
            row.needing_access += "access" in wants and "access" not in have
        if f.puid is None:
            unidentified.append({"aip": f.aip, "archival_code": f.archival_code,
                                 "path": f.path, "size": f.size})
    ordered = sorted(rows.values(), key=lambda r: (r.puid is None, -r.files, r.puid or ""))
    return {
        "aips": len(aips),
        "files": sum(r.files for r in ordered),
        "bytes": sum(r.bytes for r in ordered),
        "preservation_policy": rule_of is not None,
        "formats": [r.to_dict() for r in ordered],
        "derivatives": sorted(derivatives.values(),
                              key=lambda d: (d["role"], -d["files"], d["puid"] or "")),
        "unidentified": unidentified,
    }


def describe_rule(rule: dict[str, Any] | None) -> str:
    """One line for people: ``文字处理文档：保存→PDF/A-2b（libreoffice）；利用→保存副本``."""
    if not rule:
        return "无保存规则（保留原件）"
    parts = []
    for role, label in (("preservation", "保存"), ("access", "利用")):
        action = rule.get(role) or {}
        kind = action.get("action")
        if kind == "convert":
            parts.append(f"{label}→{action['target']}（{action['tool']}）")
        elif kind == "keep":
            parts.append(f"{label}：保留原件")
        elif kind == "original":
            parts.append(f"{label}：原件")
        elif kind == "preservation":
            parts.append(f"{label}：保存副本")
    return f"{rule['name']}：" + "；".join(parts)
