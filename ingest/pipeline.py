"""Ingest, end to end: transfer -> staging -> checks -> report -> AIPs -> storage -> catalogue.

The transfer is only read. A rejected transfer leaves a report in ``$DANGAN_HOME/reports``
and nothing in storage or the catalogue. An accepted one becomes one AIP per household
volume (or one for the whole transfer); each AIP is written to every location the storage
policy requires and read back before the catalogue commits all of them in one transaction.
A crash at any point leaves nothing visible but complete, verified copies; the next run of
the same transfer reuses the identifiers planned by the first, adopts copies that were
already published and finishes the job, so no AIP is ever made twice.
"""

from __future__ import annotations

import fcntl
import gc
import hashlib
import os
import shutil
import signal
import uuid as uuidlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ingest import fulltext, textjobs
from ingest.acceptance import Assessor, virus_event_outcome
from ingest.aip import BuiltAip, build_aip
from ingest.analysis import Analysis, Unit, analyse, plan_units
from ingest.describe import describe
from ingest.formats import (
    SUBPROCESS_MIN, BackgroundIdentification, FormatInfo, identify, tool_versions,
)
from ingest.normalise import at_ingest as normalisation
from ingest.report import Report, write_report
from ingest.staging import Limits, StagedTransfer, stage
from metadata_profiles.text import shown_text
from metadata_profiles import ProfileError, load_profile
from policies import (
    ConfigError, RejectedError, Settings, load_fixity_policy, load_preservation_policy,
    load_storage_policy,
)
from policies.config import dangan_version
from storage.catalogue import models
from storage.catalogue import auditlog
from storage.catalogue import Catalogue, SearchDocument
from storage.aip import digest_stream, read_chunks
from storage.copies import transfer_lock_path
from storage.locations import private_dir
from storage.locations import CopyReport, ExpectedFile, Location
from storage.aip import Agent, AipDescription, Event, parse_mets
from storage.catalogue import protect_description, store_protected
from storage.copies import LocationSet, record_class, record_copy_failure, write_copies
from storage.copies import AppliedLock, WormSettings, lock_for, record_locks

ProgressFn = Callable[[str, int, int | None], None]   # phase, bytes done (delta), total


@dataclass
class PreparedAip:
    """An AIP bag built in staging, with the search documents it will get."""

    built: BuiltAip
    documents: list[SearchDocument]


@dataclass
class StoredAip:
    """An AIP whose copies are all written and verified, ready for the catalogue."""

    copies: list[CopyReport]
    description: AipDescription
    documents: list[SearchDocument]
    record: dict
    size: int
    other_files: dict[str, ExpectedFile]     # tag files and mets.xml (not listed in METS)
    locks: list[AppliedLock] = field(default_factory=list)   # retention locks of the copies


@dataclass
class IngestResult:
    """What became of a transfer."""

    transfer_id: str
    status: str                         # accepted | rejected | already-ingested
    aips: list[dict] = field(default_factory=list)
    report_json: str | None = None
    report_html: str | None = None
    failures: list[dict] = field(default_factory=list)
    rejected_units: list[dict] = field(default_factory=list)
    text_jobs: list[int] = field(default_factory=list)   # OCR queued (ingest.textjobs)
    mapping: str | None = None        # an E-ARK SIP: what of its metadata was mapped

    @property
    def exit_code(self) -> int:
        return 1 if self.status in ("rejected", "partially-accepted") else 0

    def to_dict(self) -> dict:
        return {"transfer": self.transfer_id, "status": self.status, "aips": self.aips,
                "report": {"json": self.report_json, "html": self.report_html},
                "failures": self.failures, "rejected_units": self.rejected_units,
                "text_jobs": self.text_jobs,
                **({"eark_mapping": self.mapping} if self.mapping is not None else {})}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def crash_point(name: str) -> None:
    """Fault injection for the crash-safety tests: die here if DANGAN_CRASH_AT names it."""
    if os.environ.get("DANGAN_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _without_cycle_collection() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the length of an ingest.

    An ingest keeps a few objects per file alive until it ends; as they accumulate, the
    collector walks all of them again and again (ten full passes, about a second, for
    20,000 files) and finds nearly nothing: the ingest makes almost no reference cycles,
    and memory is freed by reference counting as usual.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _clean_stale_runs(staging: Path) -> None:
    """Remove staging folders whose ingest process is gone (its lock is free)."""
    if not staging.is_dir():
        return
    for lock in staging.glob("run-*.lock"):
        with open(lock, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            shutil.rmtree(lock.with_suffix(""), ignore_errors=True)
            lock.unlink(missing_ok=True)
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _run_folder(staging: Path) -> Iterator[Path]:
    private_dir(staging)
    _clean_stale_runs(staging)
    name = f"run-{uuidlib.uuid4().hex[:12]}"
    lock = staging / f"{name}.lock"
    with open(lock, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield staging / name
        finally:
            shutil.rmtree(staging / name, ignore_errors=True)
            lock.unlink(missing_ok=True)


def fingerprint(staged: StagedTransfer) -> str:
    """Content fingerprint of a transfer: SHA-256 over its sorted (path, size, sha256)."""
    digest = hashlib.sha256()
    for f in sorted(staged.files, key=lambda f: f.rel):
        digest.update(f"{f.rel}\t{f.size}\t{f.digests['sha256']}\n".encode("utf-8"))
    return digest.hexdigest()


class Ingester:
    """Ingests transfers into one Dangan home.

    Arguments:
        settings: the home's settings.
        profile: metadata profile name (default from the settings).
        progress: called with (phase, bytes, total bytes) as work advances.
        accept_valid: accept the units that pass and list the rest for resubmission,
            instead of refusing the whole transfer when anything fails.
    """

    def __init__(self, settings: Settings, profile: str | None = None,
                 progress: ProgressFn | None = None, accept_valid: bool = False) -> None:
        self.settings = settings
        try:
            self.profile = load_profile(profile or settings.get("ingest", "profile"), settings.home)
        except ProfileError as exc:
            raise ConfigError(str(exc)) from exc
        self.fixity = load_fixity_policy(settings)
        self.storage_policy = load_storage_policy(settings)
        self.location_set = LocationSet(self.storage_policy, settings)
        self.locations: list[Location] = self.location_set.for_class()
        self.worm = WormSettings.from_settings(settings)
        self.catalogue = Catalogue.open(settings)
        # the policies this ingest works under are in the audit log before its entries
        auditlog.record_policy_changes(self.catalogue, settings)
        self.assessor = Assessor(settings, self.profile, self.catalogue,
                                 settings.int("ingest", "workers"))
        self.accept_valid = accept_valid
        self.preservation = load_preservation_policy(settings)
        self._normalised: dict[str, list[normalisation.Normalised]] = {}
        self.fulltext = fulltext.Options.from_settings(settings)
        self._text_pending: dict[str, list[dict]] = {}   # AIP -> files whose OCR is queued
        self.progress = progress or (lambda phase, done, total: None)
        self.workers = settings.int("ingest", "workers")
        self.limits = Limits(settings.int("ingest", "max_unpacked_bytes"),
                             settings.int("ingest", "max_files"),
                             settings.int("ingest", "max_compression_ratio"))

    def ingest(self, source: Path) -> IngestResult:
        """Ingest one transfer (folder, bag, .zip or .tar[.gz], or an E-ARK SIP as a folder
        or .zip: see :mod:`ingest.eark`)."""
        from ingest import eark

        source = Path(source).absolute()
        if eark.is_eark(source):
            def unpack(package: Path, dest: Path) -> None:
                stage(package, dest, self.fixity.algorithms, self.limits, workers=self.workers)

            with eark.as_transfer(source, self.settings.staging, self.profile,
                                  unpack) as converted:
                result = self._ingest(converted.transfer)
                result.mapping = converted.note
                return result
        return self._ingest(source)

    def _ingest(self, source: Path) -> IngestResult:
        with _run_folder(self.settings.staging) as run, _without_cycle_collection():
            started: list[BackgroundIdentification] = []
            total: int | None = None

            def planned(names: list[str], size: int) -> None:
                # a folder is walked: its files' formats are identified while they are copied
                nonlocal total
                total = size
                self.progress("stage", 0, total)
                if len(names) >= SUBPROCESS_MIN:
                    started.append(BackgroundIdentification(source, names, self.workers))

            if not source.is_dir():
                self.progress("stage", 0, None)
            try:
                staged = stage(source, run / "transfer", self.fixity.algorithms, self.limits,
                               workers=self.workers,
                               progress=lambda n: self.progress("stage", n, total),
                               on_plan=planned,
                               writeback=bool(self.settings.get("storage", "fsync")),
                               read_back=self.locations[-1].read_back_for(self.settings.staging))
                self._early_formats = started[0] if started else None
                crash_point("staged")
                print_fp = fingerprint(staged)
                with _locked(transfer_lock_path(self.settings, print_fp)), \
                        self.catalogue.transfer_lock(print_fp):
                    done = self.catalogue.find_transfer(print_fp, "accepted")
                    if done is not None:
                        return self._already(done)
                    return self._ingest_staged(staged, print_fp, run)
            finally:
                # identification not collected (refused, already ingested, failed) is stopped
                self._early_formats = self._identifier = None
                for job in started:
                    job.cancel()

    def _identify(self, analysis: Analysis, rels: list[str]) -> dict[str, FormatInfo]:
        """Formats of the content files: from the identification that ran beside staging
        (folder transfers), else identified now in the staging copy."""
        early, self._early_formats = getattr(self, "_early_formats", None), None
        # its child has the signature files loaded: the AIPs' metadata files are asked of it
        self._identifier = early
        files = [analysis.content[r] for r in rels]
        if early is not None:
            by_source = early.results()
            found = {rel: by_source.get(f.original_name) for rel, f in zip(rels, files)}
            if all(found.values()):
                return found  # type: ignore[return-value]
        return dict(zip(rels, identify([analysis.content_path(r) for r in rels], self.workers,
                                       [f.mime for f in files])))

    def _already(self, transfer: models.Transfer) -> IngestResult:
        aips = self.catalogue.aips_of_transfer(transfer.id)
        return IngestResult(transfer.id, "already-ingested",
                            [{"uuid": a.uuid, "archival_code": a.archival_code,
                              "label": a.label, "status": a.status} for a in aips],
                            report_json=transfer.report_path,
                            report_html=(transfer.report_path or "").replace(".json", ".html") or None)

    def _ingest_staged(self, staged: StagedTransfer, print_fp: str, run: Path) -> IngestResult:
        analysis = analyse(staged, self.profile)
        rels = sorted(analysis.content)
        self.progress("identify", 0, None)
        analysis.formats.update(self._identify(analysis, rels))
        assessment = self.assessor.assess(analysis, print_fp)
        self.progress("check", len(rels), len(rels))
        checks = assessment.checks
        pending = self.catalogue.find_transfer(print_fp, "in-progress")
        transfer_id = pending.id if pending else str(uuidlib.uuid4())
        label = staged.source.name
        units = plan_units(analysis, label)
        plan = dict(pending.plan) if pending else {}
        for unit in units:
            plan.setdefault(unit.key, str(uuidlib.uuid4()))
        verdict = self.assessor.verdict(checks, units, analysis, self.accept_valid)
        self._normalised = {}
        if self.preservation.at_ingest and verdict.accepted:
            # after the checks, from the staged copies; a failure that the policy makes
            # rejecting refuses its unit as any other rejecting finding does
            self.progress("normalise", 0, None)
            self._normalised = normalisation.normalise_units(
                self.preservation, verdict.accepted, analysis, run / "normalise",
                self.settings.int("normalise", "timeout"))
            found = normalisation.report_check(self._normalised)
            if found is not None:
                checks = [*checks, found]
                verdict = self.assessor.verdict(checks, units, analysis, self.accept_valid)
        tools = self._tools(analysis)
        report = Report(
            transfer={"id": transfer_id, "source": shown_text(str(staged.source)),
                      "kind": staged.kind,
                      "received": _now(), "files": len(staged.files),
                      "bytes": staged.total_bytes, "fingerprint": print_fp,
                      "profile": self.profile.id, "bag": analysis.bag is not None},
            checks=checks, tools={k: v.version or "" for k, v in tools.items()},
            dangan_version=dangan_version(),
            units=[{"key": u.key, "archival_code": u.archival_code, "label": u.label,
                    "aip_uuid": plan[u.key], "files": len(u.files)} for u in verdict.accepted],
            rejected_units=[{"key": u.key, "archival_code": u.archival_code, "label": u.label,
                             "problems": problems} for u, problems in verdict.refused
                            if not verdict.whole_transfer],
            policies=self.assessor.policy_versions(),
            normalisation=normalisation.report_entries(self._normalised),
            decision=("rejected" if not verdict.accepted else
                      "partially-accepted" if verdict.refused else "accepted"))
        units = verdict.accepted
        folder = self.settings.reports / transfer_id
        # the report's data (a dict per problem) is not kept for the rest of the ingest
        json_path, html_path = write_report(report, folder)[:2]
        if not units:
            self.assessor.reject(print_fp)
            return IngestResult(transfer_id, "rejected", [], str(json_path), str(html_path),
                                [c.to_dict() for c in report.failures()])
        if pending is None:
            self.catalogue.begin_transfer(transfer_id, print_fp,
                                          shown_text(str(staged.source)), self.profile.id, plan)
        built = []
        for unit in units:
            built.append(self._build(unit, plan[unit.key], analysis, run, tools, report,
                                     transfer_id, [json_path, html_path]))
            self.progress("build", 1, len(units))
        if getattr(self, "_identifier", None) is not None:
            # every file is identified: the Siegfried child's memory is not held to the end
            self._identifier.cancel()
            self._identifier = None
        crash_point("built")
        stored = []
        for aip in built:
            stored.append(self._store(aip))
            self.progress("store", 1, len(built))
        crash_point("stored")
        text_jobs = self._commit(transfer_id, stored, str(json_path), report)
        return IngestResult(transfer_id, report.final_decision(),
                            [{"uuid": a.description.uuid,
                              "archival_code": a.description.archival_code,
                              "label": a.description.label, "status": "UPLOADED"}
                             for a in stored],
                            str(json_path), str(html_path),
                            [c.to_dict() for c in report.failures()], report.rejected_units,
                            text_jobs)

    def _tools(self, analysis: Analysis) -> dict[str, Agent]:
        versions = tool_versions()
        agents = {
            "dangan": Agent(f"dangan-{dangan_version()}", "Dangan", "software", dangan_version()),
            "siegfried": Agent(f"siegfried-{versions.siegfried}", "Siegfried (pygfried)", "software",
                               f"{versions.siegfried}; {versions.signature}"),
            "libmagic": Agent(f"libmagic-{versions.libmagic}", "libmagic (python-magic)",
                              "software", versions.libmagic),
            "hashlib": Agent("hashlib-openssl", "Python hashlib", "software", versions.hashlib),
        }
        clamav = self.assessor.clamav_agent(analysis.scan)
        if clamav is not None:
            agents["clamav"] = clamav
        if analysis.bag is not None:
            import bagit

            version = getattr(bagit, "VERSION", "") or "unknown"
            agents["bagit"] = Agent(f"bagit-python-{version}", "bagit-python", "software", version)
        return agents

    def _build(self, unit: Unit, aip_uuid: str, analysis: Analysis, run: Path,
               tools: dict[str, Agent], report: Report, transfer_id: str,
               report_files: list[Path]) -> PreparedAip:
        # the text first: personal information in it rates the records (content_pii)
        text = fulltext.extract_unit(unit, analysis, run / "text" / aip_uuid, self.fulltext)
        description = describe(unit, analysis, analysis.staged.source.name, analysis.records,
                               self.assessor.policies(), aip_uuid,
                               {rel: r.text for rel, r in text.results.items()},
                               self.assessor.household_names(analysis.records))
        fulltext.attach(description.documents, description.item_of, text.results)
        normalised = self._normalised.get(unit.key, [])
        when = _now()
        self._text_pending[aip_uuid] = textjobs.pending_files(text.results, description.item_of)
        built = build_aip(
            uuid=aip_uuid, unit=unit, analysis=analysis, folder=run / "aips" / aip_uuid,
            algorithms=self.fixity.algorithms, items=description.items,
            item_of=description.item_of, record=description.record,
            events=self._events(unit, analysis, tools, report, transfer_id)
            + [fulltext.premis_event(text.results, (tools["dangan"].id,), _now())],
            agents=[*tools.values(), *normalisation.agents(self.preservation, normalised)],
            retention=description.retention,
            report_files=report_files, derived_files=text.files,
            derivatives=normalisation.aip_files(normalised),
            derivative_events=(lambda ids: normalisation.events(
                self.preservation, normalised, ids, when, tools["dangan"].id)) if normalised else None,
            source_organization=self.settings.get("ingest", "source_organization"),
            dangan_agent=tools["dangan"].id,
            identify_files=(self._identifier.identify if getattr(self, "_identifier", None)
                            else identify))
        return PreparedAip(built, description.documents)

    def _events(self, unit: Unit, analysis: Analysis, tools: dict[str, Agent], report: Report,
                transfer_id: str) -> list[Event]:
        now = _now()
        counts = report.counts()
        not_checked = [c.code for c in report.checks if c.status == "not-checked"]
        warned = [c.code for c in report.checks if c.status == "failed"]
        formats = [analysis.formats.get(f.rel[len(analysis.content_prefix):]) for f in unit.files]
        unidentified = sum(1 for f in formats if f is None or f.puid is None)
        from_pronom = sum(1 for f in formats if f is not None and f.mime_by == "siegfried")
        by_libmagic = sum(1 for f in formats if f is not None and f.mime_by == "libmagic")

        def event(kind: str, outcome: str, detail: str, note: str, *agents: str) -> Event:
            return Event(str(uuidlib.uuid4()), kind, now, outcome, detail, note,
                         tuple(tools[a].id for a in agents if a in tools))

        return [
            event("message digest calculation", "pass",
                  f"{'+'.join(self.fixity.algorithms)} computed in the single read that staged "
                  "each file", "", "dangan", "hashlib"),
            event("format identification", "pass",
                  "PRONOM by Siegfried; MIME type from the PRONOM record where Siegfried matched "
                  "a signature, else by libmagic",
                  f"{len(formats)} files, {unidentified} unidentified; MIME type of "
                  f"{from_pronom} from PRONOM (Siegfried), of {by_libmagic} by libmagic",
                  "siegfried", *(("libmagic",) if by_libmagic else ())),
            event("validation", "pass",
                  f"DA/T 70-2018 transfer checks: {counts['passed']} passed, {counts['failed']} "
                  f"failed as warnings, {counts['not-checked']} not checked",
                  f"warnings: {', '.join(warned) or 'none'}; not checked: "
                  f"{', '.join(not_checked) or 'none'}", "dangan", "bagit"),
            event("virus check", *virus_event_outcome(analysis.scan), "dangan", "clamav"),
            event("ingestion", "pass",
                  f"transfer {transfer_id} from {shown_text(str(analysis.staged.source))}",
                  "", "dangan"),
        ]

    def _store(self, prepared: PreparedAip) -> StoredAip:
        built = prepared.built
        retention = built.description.retention
        period = retention.period if retention else None
        locations = self.location_set.for_class(record_class(period, self.storage_policy))
        total = sum(e.size for e in built.expected.values())
        # every required copy written, read back and locked, failed attempts retried and
        # recorded; CopyFailed leaves the AIP uncatalogued (a re-run reuses what was written)
        written = write_copies(
            locations, built.uuid, built.folder, built.expected,
            scratch=built.folder.with_name(f"{built.uuid}.adopted"),
            lock=lock_for(period, retention.expiry, self.worm) if retention else None,
            attempts=self.settings.int("storage", "copy_attempts"),
            progress=lambda n: self.progress("verify", n, total * len(locations)),
            after_each=lambda: crash_point("stored-one"),
            on_failure=lambda name, attempt, message: record_copy_failure(
                self.catalogue, built.uuid, name, attempt, message))
        copies = written.copies
        description, expected = built.description, built.expected
        if written.adopted is not None:
            # the copy published by an interrupted earlier run is the system of record
            location = written.adopted
            with location.open(built.uuid, "data/metadata/mets.xml") as stream:
                description = parse_mets(stream.read())
            expected = {}
            for info in location.list_files(built.uuid):
                with location.open(built.uuid, info.path) as stream:
                    size, found = digest_stream(read_chunks(stream), self.fixity.algorithms)
                expected[info.path] = ExpectedFile(size, found)
            total = sum(e.size for e in expected.values())
        described = {f.path for f in description.files}
        others = {p: e for p, e in expected.items() if p not in described}
        return StoredAip(copies, description, prepared.documents, built.record, total, others,
                         written.locks)

    def _commit(self, transfer_id: str, stored: list[StoredAip], report_path: str,
                report: Report) -> list[int]:
        jobs = []
        with self.catalogue.session() as s:
            codes: dict[str, str] = {}
            for aip in stored:
                # the catalogue keeps ID numbers encrypted and masked; the AIP keeps the original
                description, record, protected = protect_description(
                    aip.description, aip.record, self.profile.protected_fields,
                    self.assessor.vault)
                self.catalogue.add_aip(s, description, transfer_id=transfer_id,
                                       size=aip.size, copies=aip.copies,
                                       documents=aip.documents, record=record,
                                       other_files=aip.other_files)
                store_protected(s, description.uuid, protected)
                record_locks(s, description.uuid, aip.locks)
                jobs.append(textjobs.queue(s, description.uuid,
                                           self._text_pending.get(description.uuid, [])))
                codes.update({str(i.fields["archival_code"]): description.uuid
                              for i in description.items if i.fields.get("archival_code")})
            row = s.get(models.Transfer, transfer_id)
            self.assessor.registry.assign(s, row.fingerprint, codes)
            row.status, row.report_path = "accepted", report_path
            row.finished_at = datetime.now(timezone.utc)
            row.summary = report.counts()
            self.catalogue.append_audit(s, "dangan", "transfer-accepted", transfer_id,
                                        {"aips": [a.description.uuid for a in stored]})
            s.flush()
            return [job.id for job in jobs if job is not None]


def ingest(source: Path, settings: Settings, profile: str | None = None,
           progress: ProgressFn | None = None, accept_valid: bool = False) -> IngestResult:
    """Ingest one transfer into the home described by ``settings``."""
    return Ingester(settings, profile, progress, accept_valid).ingest(source)
