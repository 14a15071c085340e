"""Deciding on a transfer: run the four-property checks, split the verdict by unit, refuse.

:class:`Assessor` holds what the checks need from configuration (the profile, the retention,
access and format policies, the virus scanner, the 档号 register), all loaded and checked when
it is created, so a broken policy stops ingest before any transfer is touched. It

- looks inside every record file (encryption, macros, readability) and scans the transfer
  for viruses; an infected file is moved into ``staging/quarantine/`` at once and never
  leaves staging;
- validates the catalogue rows, decides their retention, claims their 档号;
- runs the checks;
- with ``--accept-valid``, finds which units (future AIPs) the failures belong to, so the
  units that pass are accepted and the rest listed for resubmission;
- on rejection, releases the 档号 the transfer reserved; the report in the reports folder
  is the rejected transfer's record. A rejected transfer stores nothing.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import date

from ingest.analysis import Analysis, Unit
from ingest.checks import CheckContext, run_checks
from ingest.describe import Policies
from ingest.findings import CheckResult, Problem
from ingest.inspect import Inspection, inspect_files
from ingest.records import RecordSet, build_records, claim_codes
from ingest.virus import Scanner, ScanResult, scanner_from_settings
from metadata_profiles.text import shown_text
from metadata_profiles import Profile
from policies import (
    CatalogueError,
    Settings,
    load_access_policy,
    load_format_policy,
    load_retention_policy,
)
from storage.catalogue import CodeRegistry
from storage.catalogue import Catalogue
from storage.aip import Agent
from storage.catalogue import PiiVault


@dataclass
class Assessment:
    """The checks' verdict on one transfer.

    Attributes:
        checks: every check result, in report order.
        records: the validated catalogue rows.
        inspections: content-relative path -> what looking inside found.
        scan: the virus scan, or None without a scanner.
        quarantined: staged paths moved into quarantine.
    """

    checks: list[CheckResult]
    records: RecordSet
    inspections: dict[str, Inspection] = field(default_factory=dict)
    scan: ScanResult | None = None
    quarantined: list[str] = field(default_factory=list)


@dataclass
class UnitVerdict:
    """Which units pass, which are refused (with their problems), and whether the refusal
    concerns the whole transfer."""

    accepted: list[Unit]
    refused: list[tuple[Unit, list[dict]]]
    whole_transfer: bool


class Assessor:
    """Checks transfers for one Dangan home.

    Arguments:
        settings: the home's settings.
        profile: the metadata profile in use.
        catalogue: the catalogue (for the 档号 register).
        workers: threads for looking inside files.

    Raises:
        ConfigError: a policy or the antivirus configuration is invalid (file and line).
    """

    def __init__(self, settings: Settings, profile: Profile, catalogue: Catalogue,
                 workers: int = 2) -> None:
        self.settings, self.profile, self.catalogue = settings, profile, catalogue
        self.retention = load_retention_policy(settings)
        self.access = load_access_policy(settings)
        self.formats = load_format_policy(settings)
        self.scanner: Scanner | None = scanner_from_settings(settings)
        self.registry = CodeRegistry(catalogue)
        self.vault = PiiVault.from_settings(settings)
        self.workers = workers
        self._held_names: frozenset[str] | None = None

    def policies(self, today: date | None = None) -> Policies:
        """The retention and access policies descriptions are computed with."""
        return Policies(self.retention, self.access, today or date.today())

    def policy_versions(self) -> dict[str, str]:
        """What the report names as the rules applied."""
        return {"profile": f"{self.profile.id} {self.profile.version}",
                "retention": self.retention.describe(),
                "access": self.access.path.name, "formats": self.formats.path.name}

    # -- checking --------------------------------------------------------------------------
    def assess(self, analysis: Analysis, fingerprint: str) -> Assessment:
        """Inspect, scan, validate and check a staged, identified transfer."""
        rels = sorted(analysis.content)
        formats = analysis.formats
        root = f"{analysis.staged.root}/{analysis.content_prefix}"
        found = inspect_files([root + r for r in rels],
                              [formats[r].mime if r in formats else None for r in rels],
                              self.workers, [analysis.content[r].head for r in rels])
        inspections = dict(zip(rels, found))
        scan = None
        if self.scanner is not None:
            scan = self.scanner.scan([analysis.staged.root / f.rel for f in analysis.staged.files])
        quarantined = self._quarantine(analysis, scan, fingerprint)
        records = build_records(analysis, self.profile, self.retention)
        catalogue_ok = True
        try:
            claim_codes(records, self.profile, self.registry, fingerprint)
        except CatalogueError:
            catalogue_ok = False
        analysis.records, analysis.scan = records, scan
        context = CheckContext(analysis, records, self.formats, inspections, scan, catalogue_ok,
                               self._follows(records) if catalogue_ok else None)
        return Assessment(run_checks(context), records, inspections, scan, quarantined)

    def _follows(self, records: RecordSet) -> dict[str, bool] | None:
        """Each 关联档号 (``follows``) of the rows -> whether the repository holds it."""
        from storage.catalogue import named_record

        names = {str(r.values.get("follows") or "").strip() for r in records.rows.values()}
        names.discard("")
        if not names:
            return {}
        try:
            with self.catalogue.session() as s:
                return {n: named_record(s, n) is not None for n in sorted(names)}
        except CatalogueError:
            return None

    def _quarantine(self, analysis: Analysis, scan: ScanResult | None,
                    fingerprint: str) -> list[str]:
        """Move infected files out of the transfer into ``staging/quarantine/<fingerprint>``."""
        if scan is None or not scan.infected:
            return []
        folder = self.settings.staging / "quarantine" / fingerprint[:16]
        root = str(analysis.staged.root).rstrip("/") + "/"
        moved = []
        for path, signature in sorted(scan.infected.items()):
            rel = path.removeprefix(root)
            target = folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(path, target)
            os.chmod(target, 0o600)
            moved.append(rel)
            content = rel.removeprefix(analysis.content_prefix)
            analysis.content.pop(content, None)
        note = {"transfer": shown_text(str(analysis.staged.source)),
                "fingerprint": fingerprint,
                "engine": f"{scan.engine} {scan.version}", "infected": {
                    path.removeprefix(root): sig for path, sig in scan.infected.items()}}
        (folder / "quarantine.json").write_text(json.dumps(note, ensure_ascii=False, indent=2),
                                                encoding="utf-8")
        return moved

    # -- deciding --------------------------------------------------------------------------
    def verdict(self, checks: list[CheckResult], units: list[Unit], analysis: Analysis,
                accept_valid: bool) -> UnitVerdict:
        """Which units may be accepted.

        Without ``accept_valid`` any rejecting problem refuses the whole transfer. With it,
        each rejecting problem is traced to its unit by row or file; a problem that belongs
        to no unit (a missing column, a bag digest) still refuses everything.
        """
        rejecting = [(c, p) for c in checks if c.rejects for p in c.problems
                     if (p.severity or c.severity) == "error"]
        rejecting += [(c, None) for c in checks if c.rejects and not c.problems]
        if not rejecting:
            return UnitVerdict(list(units), [], False)
        if not accept_valid:
            return UnitVerdict([], [(u, []) for u in units], True)
        owner = _owners(units, analysis)
        by_unit: dict[str, list[dict]] = {}
        for check, problem in rejecting:
            key = _owner_of(problem, owner, analysis) if problem is not None else None
            if key is None:
                return UnitVerdict([], [(u, []) for u in units], True)
            entry = {"code": check.code, "name": check.name}
            if problem is not None:
                # in the order of Problem's fields, as its __dict__ gave them
                entry.update({k: v for k in ("message", "path", "row", "column", "sheet")
                              if (v := getattr(problem, k)) is not None})
            by_unit.setdefault(key, []).append(entry)
        accepted = [u for u in units if u.key not in by_unit]
        refused = [(u, by_unit[u.key]) for u in units if u.key in by_unit]
        return UnitVerdict(accepted, refused, not accepted)

    def reject(self, fingerprint: str) -> None:
        """Undo what checking a refused transfer reserved (its 档号): the catalogue is left as
        it was; the transfer's record is its report in ``$DANGAN_HOME/reports/<id>/``."""
        self.registry.release(fingerprint)

    def household_names(self, records: RecordSet | None) -> frozenset[str]:
        """The household heads' names to look for in content: those of the household volumes
        in the repository (read once per ingest) and those of this transfer's rows."""
        if self._held_names is None:
            from sqlalchemy import select

            from storage.catalogue import models

            names: set[str] = set()
            with self.catalogue.session() as s:
                for fields in s.scalars(select(models.Item.fields).where(
                        models.Item.level == "户卷")):
                    if isinstance(fields, dict) and fields.get("head_name"):
                        names.add(str(fields["head_name"]).strip())
            self._held_names = frozenset(names)
        here = {str(r.values["head_name"]).strip() for r in (records.rows.values() if records
                                                             else []) if r.values.get("head_name")}
        shortest = self.access.content_pii.min_name_chars
        return frozenset(n for n in self._held_names | here if len(n) >= shortest)

    def clamav_agent(self, scan: ScanResult | None) -> Agent | None:
        """The PREMIS agent of the virus scanner that ran, if any."""
        if scan is None or not scan.version:
            return None
        return Agent(f"{scan.engine}-{scan.version.split('/')[0].split()[-1]}", f"ClamAV ({scan.engine})",
                     "software", scan.version)


def virus_event_outcome(scan: ScanResult | None) -> tuple[str, str, str]:
    """(outcome, detail, note) of the PREMIS virus check event."""
    if scan is None:
        return "not-checked", "no virus scanner configured", "GD-4-2 not checked"
    if not scan.ran:
        return "fail", f"virus scan did not complete: {scan.error}", "GD-4-1 failed"
    if scan.infected:
        return "fail", f"{scan.engine} found {len(scan.infected)} infected file(s)", "; ".join(
            f"{p.rsplit('/', 1)[-1]}: {s}" for p, s in scan.infected.items())
    return "pass", f"{scan.engine} scanned {scan.scanned} files: no virus found", scan.version


def _owners(units: list[Unit], analysis: Analysis) -> dict[str, str]:
    """Row key or staged file path -> the key of the unit that holds it."""
    owner: dict[str, str] = {}
    for unit in units:
        for row in unit.rows:
            owner[f"row:{row.key}"] = unit.key
            rel = analysis.row_files.get(row.key)
            if rel:
                owner[f"file:{analysis.content_prefix}{rel}"] = unit.key
        for staged in unit.files:
            owner[f"file:{staged.rel}"] = unit.key
    return owner


def _owner_of(problem: Problem, owner: dict[str, str], analysis: Analysis) -> str | None:
    if problem.row is not None:
        return owner.get(f"row:{problem.sheet or ''}:{problem.row}")
    if problem.path:
        found = owner.get(f"file:{problem.path}")
        if found is None and analysis.content_prefix:
            found = owner.get(f"file:{analysis.content_prefix}{problem.path}")
        return found
    return None
