"""Normalisation: preservation and access derivatives, made by policy and checked.

The plan is data (``policies/data/preservation.yaml``, :mod:`policies.preservation`): per
format a preservation action (keep, or make a preservation copy) and an access action (serve
the original or the preservation copy, or make an access copy), each naming a tool of the
registry and the checks its output must pass. This package turns that into files:

>>> from policies import load_settings, load_preservation_policy
>>> policy = load_preservation_policy(load_settings("/nonexistent-home"))
>>> [(a.role, a.conversion.target) for a in plan(policy, "fmt/40", "申请书.doc")]
[('preservation', 'PDF/A-2b')]

Public API (what ingest and ``dangan migrate`` call):

* :func:`plan` ``(policy, puid, name) -> list[Action]`` — the derivatives a file needs.
* :func:`run_batch` ``(policy, jobs, workdir, timeout=600, reuse=True) -> list[Derivative]`` —
  make and check many at once; ``jobs`` are :class:`Job` (action, source file, the source's
  text if already extracted, its MIME type). LibreOffice starts once per batch and target.
* :func:`run` ``(policy, action, source, workdir, ...) -> Derivative`` — one derivative.
* :func:`derivative_path` ``(source bag path, role, extension) -> bag path``:
  ``data/objects/a/b.doc`` -> ``data/preservation/a/b.doc.pdf`` (``data/access/…`` for access).
* :func:`agent_for` ``(policy, derivative) -> Agent`` — the tool as a PREMIS agent (name and
  version line, e.g. ``libreoffice-7.4.7.2`` / ``LibreOffice 7.4.7.2 40(Build:2)``).
* :func:`premis_event` — the ``normalization`` (or ``migration``) event of a derivative.

A :class:`Derivative` carries its role, source, output file (in ``workdir``; the caller
moves it into the AIP), target, tool, tool version, command line, outcome (``passed`` —
made and checked; ``failed`` — the tool failed or a check failed, with the tool's message;
``not-checked`` — not made, e.g. ``"not normalised: tool ghostscript absent: …"``), the
output identified again (PUID, format name, MIME type) and its :class:`Check` list.
Sources are never touched: each is copied into ``workdir`` before any tool sees it. Only a
``passed`` derivative is to be kept; anything else keeps the original alone and is reported.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ingest.normalise import tools
from ingest.normalise.actions import ROLE_FOLDERS, Action, Check, Derivative, derivative_path, plan
from ingest.normalise.convert import TARGET_EXTENSIONS, run_batch as _convert
from ingest.normalise.validate import overlap, text_of, validate
from policies import PreservationPolicy
from storage.aip import Agent, Event

__all__ = ["Action", "Check", "Derivative", "Job", "ROLE_FOLDERS", "TARGET_EXTENSIONS",
           "agent_for", "derivative_path", "outcome_of", "overlap", "plan", "premis_event",
           "run", "run_batch", "text_of", "validate"]

_COUNTED = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaffA-Za-z0-9]")
MIN_TEXT_CHARS_PER_PAGE = 10
"""A source PDF with fewer counted characters a page has no usable text layer (OCR instead)."""


@dataclass(frozen=True)
class Job:
    """One derivative to make: the action, its source file, and what is known of the source.

    Attributes:
        action: from :func:`plan`.
        source: the source file (only read).
        source_text: the source's text if already extracted (ingest has it), else None.
        source_mime: the source's MIME type, or None.
    """

    action: Action
    source: Path
    source_text: str | None = None
    source_mime: str | None = None


def _without_text_layer(job: Job) -> bool:
    """Whether a PDF source has (almost) no text layer: OCRmyPDF makes its copy instead."""
    if Path(job.source).suffix.lower() != ".pdf" and job.source_mime != "application/pdf":
        return False
    text = job.source_text
    pages = 1
    if text is None:
        result = text_of(job.source, job.source_mime)
        text, pages = result.text, max(1, result.pages)
    else:
        pages = max(1, text.count("\f") + 1)
    return len(_COUNTED.findall(text)) < MIN_TEXT_CHARS_PER_PAGE * pages


def run_batch(policy: PreservationPolicy, jobs: Sequence[Job], workdir: Path,
              timeout: int = 600, reuse: bool = True) -> list[Derivative]:
    """Make and check the derivatives of ``jobs`` in ``workdir``.

    Arguments:
        policy: the preservation plan (its tool registry).
        jobs: what to make.
        workdir: a folder for the copies and outputs (created when missing).
        timeout: seconds per file for a tool.
        reuse: one LibreOffice process per target for the whole batch (``False``: one per file).

    Returns:
        One validated :class:`Derivative` per job, in order.
    """
    alternative = {i: job.action.conversion.without_text for i, job in enumerate(jobs)
                   if job.action.conversion.without_text and _without_text_layer(job)}
    made = _convert(policy, [(j.action, Path(j.source)) for j in jobs], Path(workdir),
                    timeout, reuse, alternative)
    for index, (job, derivative) in enumerate(zip(jobs, made)):
        text = job.source_text
        if index in alternative:
            text = ""      # the source had no text to keep: the OCR text is the copy's own
            derivative.checks.append(Check("text-layer", "passed", "source without a text "
                                           f"layer: made by {derivative.tool} (OCR, chi_sim)"))
        validate(job.action, derivative, text, job.source_mime)
    return made


def run(policy: PreservationPolicy, action: Action, source: Path, workdir: Path,
        source_text: str | None = None, source_mime: str | None = None,
        timeout: int = 600) -> Derivative:
    """Make and check one derivative (see :func:`run_batch`)."""
    return run_batch(policy, [Job(action, Path(source), source_text, source_mime)], workdir,
                     timeout)[0]


def agent_for(policy: PreservationPolicy, derivative: Derivative) -> Agent:
    """The PREMIS agent of the tool that made (or was to make) ``derivative``."""
    tool = policy.tools[derivative.tool]
    if derivative.tool_version:
        return tools.agent(tool)
    return Agent(f"{tool.name}-absent", tool.name, "software", "absent")


def outcome_of(derivative: Derivative) -> str:
    """The PREMIS outcome of a derivative's event: ``pass``, ``fail`` or ``not-checked``."""
    return {"passed": "pass", "failed": "fail"}.get(derivative.outcome, "not-checked")


def premis_event(derivative: Derivative, event_id: str, when: str, agent_ids: tuple[str, ...],
                 file_ids: tuple[str, ...], event_type: str = "normalization") -> Event:
    """The PREMIS event of one derivative.

    Arguments:
        derivative: what was made (or failed).
        event_id: a UUID string.
        when: ISO 8601 date-time.
        agent_ids: the tool's agent and Dangan's.
        file_ids: the source's file id, then the derivative's when it was kept.
        event_type: ``normalization`` at ingest, ``migration`` for a later migration.
    """
    checks = "; ".join(f"{c.name} {c.status}" + (f" ({c.detail})" if c.detail else "")
                       for c in derivative.checks)
    detail = (f"{derivative.role} copy {derivative.target} by {derivative.tool} "
              f"{derivative.tool_version or '(absent)'}: {' '.join(derivative.command)}")
    note = f"identified as {derivative.puid}; {checks}" if derivative.kept else \
        f"{derivative.message}" + (f"; {checks}" if checks else "")
    return Event(event_id, event_type, when, outcome_of(derivative), detail[:4000],
                 note[:4000], agent_ids, file_ids)
