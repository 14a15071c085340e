"""Normalisation during ingest: after the checks, before the AIP is built.

Every file of the accepted units that the plan names is converted from its staged copy
(never the file itself) in one batch (LibreOffice starts once for the whole transfer, and not
at all when no file needs it). The outcome is one report check, DG-3-2 (规范化转换): passed
when every derivative was made and checked; failed (a warning, or an error for a rule with
``on_failure: reject``) naming each file whose conversion failed, with the tool's message;
not-checked when a tool is absent. Kept derivatives go into the AIP beside their source
(``data/preservation/…``, ``data/access/…``), each with a ``normalization`` event.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ingest.findings import CheckResult, Problem, failed, not_checked, passed
from ingest.formats import FormatInfo
from ingest.normalise import (
    TARGET_EXTENSIONS, Derivative, Job, agent_for, derivative_path, plan, premis_event, run_batch,
)
from policies import PreservationPolicy
from storage.aip import Agent, Event

CHECK_CODE = "DG-3-2"
CHECK_NAME = "规范化转换（保存版本、利用版本）"


@dataclass
class Normalised:
    """One derivative made (or not) at ingest for the content file ``rel``."""

    rel: str
    derivative: Derivative

    @property
    def bag_path(self) -> str:
        """Where a kept derivative goes in the AIP."""
        return derivative_path(f"data/objects/{self.rel}", self.derivative.role,
                               TARGET_EXTENSIONS[self.derivative.target])

    @property
    def source_path(self) -> str:
        return f"data/objects/{self.rel}"


def normalise_units(policy: PreservationPolicy, units: Sequence, analysis, workdir: Path,
                    timeout: int = 600) -> dict[str, list[Normalised]]:
    """Make the derivatives of the units' files; unit key -> what was made for it."""
    skip = len(analysis.content_prefix)
    jobs, owners = [], []
    for unit in units:
        for staged in sorted(unit.files, key=lambda f: f.rel):
            rel = staged.rel[skip:]
            fmt = analysis.formats.get(rel)
            for action in plan(policy, fmt.puid if fmt else None, rel.rsplit("/", 1)[-1]):
                jobs.append(Job(action, analysis.content_path(rel), None,
                                fmt.mime if fmt else None))
                owners.append((unit.key, rel))
    found: dict[str, list[Normalised]] = {}
    if not jobs:
        return found
    for (key, rel), derivative in zip(owners, run_batch(policy, jobs, workdir, timeout)):
        found.setdefault(key, []).append(Normalised(rel, derivative))
    return found


def report_check(normalised: dict[str, list[Normalised]]) -> CheckResult | None:
    """The DG-3-2 result of what was made, or None when nothing was to be made."""
    made = [n for items in normalised.values() for n in items]
    if not made:
        return None
    problems = []
    for n in made:
        d = n.derivative
        if d.kept:
            continue
        what = f"{'保存版本' if d.role == 'preservation' else '利用版本'} {d.target}（{d.tool}）"
        if d.outcome == "not-checked":
            message = f"未转换：{what}，{d.message}；原件保留"
            severity = "warning"
        else:
            message = f"转换失败：{what}，{d.message}；原件保留"
            severity = "error" if d.on_failure == "reject" else "warning"
        problems.append(Problem(message[:2000], path=n.rel, severity=severity,
                                message_en=f"{d.role} copy {d.target} by {d.tool}: {d.message}"[:2000]))
    kept = sum(1 for n in made if n.derivative.kept)
    if not problems:
        return passed(CHECK_CODE, CHECK_NAME, f"已生成并校验 {kept} 个派生文件")
    if all(n.derivative.kept or n.derivative.outcome == "not-checked" for n in made):
        result = not_checked(CHECK_CODE, CHECK_NAME,
                             f"{len(problems)} 个派生文件未生成（工具缺失），已生成 {kept} 个")
        result.problems = problems
        return result
    errors = any(p.severity == "error" for p in problems)
    return failed(CHECK_CODE, CHECK_NAME,
                  f"{len(problems)} 个派生文件未通过转换或校验，原件均保留；已生成 {kept} 个",
                  problems, "error" if errors else "warning")


def report_entries(normalised: dict[str, list[Normalised]]) -> list[dict]:
    """The report's ``normalisation`` list: one entry per derivative, kept or not."""
    entries = []
    for items in normalised.values():
        for n in items:
            d = n.derivative
            entries.append({"source": n.source_path, "role": d.role, "target": d.target,
                            "path": n.bag_path if d.kept else None, "tool": d.tool,
                            "tool_version": d.tool_version, "outcome": d.outcome,
                            "puid": d.puid, "message": d.message,
                            "checks": [c.to_dict() for c in d.checks]})
    return entries


@dataclass(frozen=True)
class DerivedFile:
    """A kept derivative as :func:`ingest.aip.build_aip` puts it into the bag."""

    path: str
    file: Path
    use: str
    derived_from: str
    format: FormatInfo


def aip_files(items: Sequence[Normalised]) -> list[DerivedFile]:
    """The kept derivatives of one unit, in source order."""
    return [DerivedFile(n.bag_path, n.derivative.output, n.derivative.role, n.source_path,
                        FormatInfo(n.derivative.mime, n.derivative.puid,
                                   n.derivative.format_name, n.derivative.format_version))
            for n in items if n.derivative.kept and n.derivative.output is not None]


def agents(policy: PreservationPolicy, items: Sequence[Normalised]) -> list[Agent]:
    """The tools' PREMIS agents, once each."""
    found: dict[str, Agent] = {}
    for n in items:
        agent = agent_for(policy, n.derivative)
        found.setdefault(agent.id, agent)
    return list(found.values())


def events(policy: PreservationPolicy, items: Sequence[Normalised], ids: dict[str, str],
           when: str, dangan_agent: str) -> list[Event]:
    """One ``normalization`` event per derivative; ``ids`` maps bag paths to file ids."""
    found = []
    for n in items:
        files = (ids[n.source_path],) + ((ids[n.bag_path],) if n.derivative.kept else ())
        found.append(premis_event(n.derivative, str(uuidlib.uuid4()), when,
                                  (agent_for(policy, n.derivative).id, dangan_agent), files))
    return found
