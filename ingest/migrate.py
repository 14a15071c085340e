"""Later migration (``dangan migrate``): a preservation rule applied to AIPs already stored.

For one PRONOM PUID, every held AIP (or the AIPs named) is looked at in its newest version:
each original (``data/objects/…``) of that format gets the derivatives the preservation policy
asks for (optionally only those with one target), unless the version already holds them. Per
AIP:

1. the sources are materialised from storage, every digest verified on the way out
   (:class:`storage.copies.Retriever`);
2. they are converted and each output checked by :mod:`ingest.normalise` (the output is
   identified again, opened, its pages and text compared with the source's);
3. the derivatives that passed become the next version of the AIP (:mod:`storage.aip.versions`):
   only the new objects are written (derivatives, METS, record, report, bag tags), each
   derivative under ``data/preservation/…`` or ``data/access/…`` with a PREMIS ``migration``
   event (tool, version, command, checks) and a ``derivation`` relationship to its source in
   the METS. A conversion that fails is reported and keeps the original alone; when nothing
   passed, no version is made.

Resumable: the version's request fingerprint comes from the inputs (source digests, roles,
targets, tools), so a run killed before the version was committed starts it again in a fresh
attempt folder, one killed after it finds the committed version and completes it (as
``dangan update`` does), and a second run finds nothing to do. ``--dry-run`` lists what
would be done, per AIP and file, and writes nothing.
"""

from __future__ import annotations

import dataclasses
import json
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ingest.pipeline import _locked, _now, _run_folder, crash_point
from ingest.update import METS, OBJECTS, RECORD, Updater
from policies import Settings, UsageError
from storage.aip import (
    AipDescription, Event, FileEntry, Inventory, build_mets, hash_file, inventory_of,
    new_attempt, parse_mets, publish_version, request_fingerprint, version_folder,
)
from storage.catalogue import models
from storage.locations import ExpectedFile

LOGS = "data/logs/"


@dataclass
class MigrateRequest:
    """What ``dangan migrate`` is asked to do."""

    puid: str
    target: str | None = None
    aips: list[str] = field(default_factory=list)
    dry_run: bool = False
    agent: str = "dangan"
    reason: str = ""

    def reason_text(self) -> str:
        return self.reason or f"格式迁移 {self.puid}" + (f" → {self.target}" if self.target else "")


@dataclass
class PlannedFile:
    """One derivative to make (or already made) from one original of an AIP."""

    source: str
    source_sha256: str
    source_size: int
    role: str
    target: str
    tool: str
    derivative: str
    state: str = "to-do"           # to-do | present | passed | failed | not-checked
    message: str = ""
    checks: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class AipMigration:
    """What became (or would become) of one AIP."""

    aip: str
    archival_code: str | None
    files: list[PlannedFile]
    status: str = "planned"        # planned | migrated | already-migrated | unchanged | failed
    version: int | None = None
    bytes_written: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"aip": self.aip, "archival_code": self.archival_code, "status": self.status,
                "version": self.version, "bytes_written": self.bytes_written,
                "files": [f.to_dict() for f in self.files]}


@dataclass
class MigrateResult:
    """The whole run."""

    puid: str
    target: str | None
    dry_run: bool
    aips: list[AipMigration]

    @property
    def exit_code(self) -> int:
        return 1 if any(a.status == "failed" for a in self.aips) else 0

    def to_dict(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for a in self.aips:
            counts[a.status] = counts.get(a.status, 0) + 1
        return {"puid": self.puid, "target": self.target, "dry_run": self.dry_run,
                "summary": counts, "aips": [a.to_dict() for a in self.aips]}


def _conversions(policy: Any, request: MigrateRequest, source: str) -> list[tuple[Any, Any]]:
    """(rule, conversion) pairs the policy asks of one original, filtered by ``--to``."""
    extension = PurePosixPath(source).suffix.lower().lstrip(".")
    rule = policy.rule_for(request.puid, extension)
    if rule is None:
        return []
    wanted = [c for c in rule.conversions if request.target in (None, c.target)]
    return [(rule, c) for c in wanted]


def _check_request(policy: Any, request: MigrateRequest) -> None:
    if not request.puid.strip():
        raise UsageError("--puid 不能为空")
    rules = [r for r in policy.rules if request.puid in r.puids] or \
        [r for r in policy.rules if not r.puids]     # rules by extension alone
    if not any(r.conversions for r in rules):
        raise UsageError(f"保存规则中没有针对 {request.puid} 的转换（{policy.path}）：无可迁移")
    targets = sorted({c.target for r in rules for c in r.conversions})
    if request.target and request.target not in targets:
        raise UsageError(f"--to {request.target}: {request.puid} 的保存规则只转换为 "
                         f"{'、'.join(targets)}（{policy.path}）")


def plan_migration(session: Any, policy: Any, request: MigrateRequest,
                   aips: list[str] | None = None) -> list[AipMigration]:
    """What the migration would do, per AIP (newest versions only), from the catalogue."""
    from sqlalchemy import select

    from ingest.normalise import TARGET_EXTENSIONS, derivative_path
    from storage.aip import version_files

    query = select(models.Aip).where(models.Aip.status == "UPLOADED")
    if aips:
        query = query.where(models.Aip.uuid.in_(aips))
    candidates = list(session.scalars(query.order_by(models.Aip.created_at, models.Aip.uuid)))
    if not aips:
        having = set(session.scalars(select(models.File.aip_uuid).where(
            models.File.puid == request.puid).distinct()))
        candidates = [a for a in candidates if a.uuid in having]
    planned = []
    for aip in candidates:
        files = version_files(session, aip.uuid)
        todo = []
        for path, row in sorted(files.items()):
            if not path.startswith(OBJECTS) or row.puid != request.puid:
                continue
            for rule, conv in _conversions(policy, request, path):
                target = derivative_path(path, conv.role, TARGET_EXTENSIONS[conv.target])
                todo.append(PlannedFile(path, row.sha256, row.size, conv.role, conv.target,
                                        conv.tool, target,
                                        "present" if target in files else "to-do"))
        if todo or aips:
            planned.append(AipMigration(aip.uuid, aip.archival_code, todo))
    return planned


class Migrator(Updater):
    """Makes the migration versions of the AIPs of one Dangan home."""

    def migrate(self, request: MigrateRequest) -> MigrateResult:
        from policies import load_preservation_policy

        policy = load_preservation_policy(self.settings)
        _check_request(policy, request)
        uuids = []
        for name in request.aips:
            aip = self._resolve(name)
            if aip.status != "UPLOADED":
                raise UsageError(f"AIP {aip.uuid} 状态为 {aip.status}，不能迁移")
            uuids.append(aip.uuid)
        with self.catalogue.session() as s:
            planned = plan_migration(s, policy, request, uuids or None)
        for entry in planned:
            if request.dry_run:
                entry.status = "planned" if any(f.state == "to-do" for f in entry.files) \
                    else "unchanged"
                continue
            self._migrate_aip(policy, request, entry)
        return MigrateResult(request.puid, request.target, request.dry_run, planned)

    def _resolve(self, name: str) -> models.Aip:
        """An AIP named by UUID (or its start) or by its 档号."""
        from sqlalchemy import select

        from policies import NotFoundError

        try:
            return self.catalogue.get_aip(name)
        except NotFoundError:
            with self.catalogue.session() as s:
                found = s.scalars(select(models.Aip).where(
                    models.Aip.archival_code == name)).all()
            if len(found) == 1:
                return found[0]
            raise

    def _migrate_aip(self, policy: Any, request: MigrateRequest, entry: AipMigration) -> None:
        aip = self.catalogue.get_aip(entry.aip)
        with _run_folder(self.settings.staging) as run, \
                _locked(self.settings.staging / "locks" / f"update-{aip.uuid}.lock"), \
                self.catalogue.named_lock(f"update:{aip.uuid}"):
            with self.catalogue.session() as s:     # the plan again, under the AIP's lock
                fresh = plan_migration(s, policy, request, [aip.uuid])
            entry.files = fresh[0].files if fresh else []
            todo = [f for f in entry.files if f.state == "to-do"]
            if not todo:
                entry.status = "unchanged"
                return
            operations = [("migrate", f.derivative,
                           f"{f.source_sha256}:{f.role}:{f.target}:{f.tool}") for f in todo]
            request_id = request_fingerprint(request.reason_text(), operations)
            with self.catalogue.session() as s:
                previous = inventory_of(s, aip.uuid)
            adopted = self._adopt(aip, previous, request_id)
            if adopted is not None:
                entry.status, entry.version = "already-migrated", adopted.version
                entry.bytes_written = adopted.bytes_written
                for f in todo:
                    f.state = "present"
                return
            with self.catalogue.session() as s:
                previous = inventory_of(s, aip.uuid)
                # a version an earlier run committed (with another --reason) may hold some
                entry.files = plan_migration(s, policy, request, [aip.uuid])[0].files
            todo = [f for f in entry.files if f.state == "to-do"]
            if not todo:
                entry.status = "unchanged"
                return
            request_id = request_fingerprint(request.reason_text(), [
                ("migrate", f.derivative, f"{f.source_sha256}:{f.role}:{f.target}:{f.tool}")
                for f in todo])
            self._convert(policy, aip, previous, todo, run, entry, request, request_id)

    def _convert(self, policy: Any, aip: models.Aip, previous: Inventory,
                 todo: list[PlannedFile], run: Path, entry: AipMigration,
                 request: MigrateRequest, request_id: str) -> None:
        from ingest.normalise import Action, Job, run_batch

        sources: dict[str, Path] = {}
        for f in todo:                      # every digest verified on the way out
            if f.source not in sources:
                out = run / "sources" / f"{len(sources):04d}" / PurePosixPath(f.source).name
                out.parent.mkdir(parents=True)
                retriever = self._retriever_()
                retriever.save(retriever.file(aip.uuid, previous.stored(f.source)), out)
                sources[f.source] = out
        crash_point("migrate-materialised")
        old = parse_mets(self._read(aip.uuid, previous.stored(METS)))
        by_path = {e.path: e for e in old.files}
        jobs = []
        for f in todo:
            ext = PurePosixPath(f.source).suffix.lower().lstrip(".")
            rule = policy.rule_for(request.puid, ext)
            conv = next(c for c in rule.conversions if c.role == f.role and c.target == f.target)
            jobs.append(Job(Action(f.role, conv, rule, rule.on_failure), sources[f.source],
                            None, by_path[f.source].mime if f.source in by_path else None))
        made = run_batch(policy, jobs, run / "work",
                         timeout=int(self.settings.get("normalise", "timeout") or 600))
        crash_point("migrate-converted")
        for f, d in zip(todo, made):
            f.state = d.outcome
            f.message = d.message
            f.checks = [c.to_dict() for c in d.checks]
        kept = [(f, d) for f, d in zip(todo, made) if d.kept]
        if not kept:
            entry.status = "failed"
            return
        self._version(policy, aip, previous, old, list(zip(todo, made)), run, entry, request,
                      request_id)
        if any(not d.kept for d in made):
            entry.status = "failed"         # the version holds what passed; the rest is named

    def _retriever_(self) -> Any:
        if getattr(self, "_retriever", None) is None:
            from storage.copies import Retriever

            self._retriever = Retriever(self.settings, self.catalogue)
        return self._retriever

    def _version(self, policy: Any, aip: models.Aip, previous: Inventory, old: AipDescription,
                 results: list[tuple[PlannedFile, Any]], run: Path, entry: AipMigration,
                 request: MigrateRequest, request_id: str) -> None:
        from ingest.normalise import agent_for, premis_event

        number = previous.number + 1
        folder_name = version_folder(number, new_attempt())
        root = run / "version"
        files: dict[str, dict[str, Any]] = {p: dict(f) for p, f in previous.files.items()}
        objects: dict[str, ExpectedFile] = {}
        by_path = {e.path: e for e in old.files}
        dangan = old.creator_agent_id
        entries = list(old.files)
        events: list[Event] = []
        agents = {a.id: a for a in old.agents}
        now = _now()
        added = []
        for planned, derivative in results:
            source = by_path[planned.source]
            agent = agent_for(policy, derivative)
            agents[agent.id] = agent
            new_ids: tuple[str, ...] = ()
            if derivative.kept:
                size, found = hash_file(derivative.output, self.fixity.algorithms)
                self._stage_object(root, folder_name, planned.derivative, derivative.output,
                                   files, objects, size, found)
                file_id = f"file-{uuidlib.uuid4().hex[:12]}"
                new = FileEntry(file_id, planned.derivative,
                                PurePosixPath(planned.derivative).name, size, found,
                                derivative.mime, derivative.puid, derivative.format_name,
                                derivative.format_version, planned.role, source.item_id,
                                derived_from=planned.source)
                entries.append(new)
                new_ids = (file_id,)
                added.append(planned.derivative)
            events.append(premis_event(derivative, str(uuidlib.uuid4()), now,
                                       (agent.id, dangan), (source.id, *new_ids), "migration"))
        changes = {"added": sorted(added), "replaced": [], "withdrawn": [], "records": []}
        reason = request.reason_text()
        version_event = Event(
            str(uuidlib.uuid4()), "modification", now, "pass",
            f"version {number} supersedes version {previous.number}: {reason}",
            json.dumps({"supersedes": previous.number, **changes}, ensure_ascii=False,
                       sort_keys=True),
            (dangan,), tuple(e.id for e in entries if e.path in set(added)))
        # the migration's own report, beside the version's other logs
        report = run / f"migrate-v{number}.json"
        report.write_text(json.dumps(
            {"aip": aip.uuid, "version": number, "supersedes": previous.number,
             "reason": reason, "puid": request.puid, "target": request.target,
             "files": [p.to_dict() for p, _ in results],
             "tools": {d.tool: d.tool_version for _, d in results}},
            ensure_ascii=False, indent=2, sort_keys=True), encoding="utf-8")
        record = json.loads(self._read(aip.uuid, previous.stored(RECORD))) \
            if RECORD in previous.files else {}
        record = dict(record, version=number)
        record_file = run / "record.json"
        record_file.write_text(json.dumps(record, ensure_ascii=False, indent=2, sort_keys=True),
                               encoding="utf-8")
        for path, source_file, mime in ((f"{LOGS}migrate-v{number}.json", report,
                                         "application/json"),
                                        (RECORD, record_file, "application/json")):
            size, found = hash_file(source_file, self.fixity.algorithms)
            new = FileEntry(f"file-v{number}-{len(entries) + 1:05d}", path, source_file.name,
                            size, found, mime, None, None, None, "metadata")
            entries = [e for e in entries if e.path != path] + [new]
            self._stage_object(root, folder_name, path, source_file, files, objects, size,
                               found)
        description = AipDescription(
            uuid=aip.uuid, archival_code=old.archival_code, label=old.label, created=now,
            creator_agent_id=dangan, source_organization=old.source_organization,
            files=tuple(entries), items=old.items,
            events=old.events + tuple(events) + (version_event,),
            agents=tuple(agents.values()), retention=old.retention, profile=old.profile)
        mets_file = run / "mets.xml"
        mets_file.write_bytes(build_mets(description))
        size, found = hash_file(mets_file, self.fixity.algorithms)
        self._stage_object(root, folder_name, METS, mets_file, files, objects, size, found)
        self._tag_files(root, folder_name, aip, files, objects)
        inventory = Inventory(aip.uuid, number, previous.number, now, request.agent, reason,
                              "modification", files, changes, dict(previous.withdrawn),
                              request_id, f"{folder_name}inventory.json")
        crash_point("migrate-built")
        published = publish_version(self._locations(old.retention), aip.uuid, root, objects,
                                    inventory, lock=self._lock(old.retention),
                                    crash=crash_point)
        crash_point("migrate-stored")
        objects[inventory.path] = ExpectedFile(*hash_file(root / inventory.path, ["sha256"]))
        self._commit(aip, inventory, description, record, objects, None, root)
        entry.status, entry.version = "migrated", number
        entry.bytes_written = published.bytes_written


def migrate(request: MigrateRequest, settings: Settings,
            profile: str | None = None) -> MigrateResult:
    """Run (or, with ``dry_run``, plan) one migration (see the module docstring)."""
    return Migrator(settings, profile).migrate(request)


def run_migrate_job(settings: Settings, payload: dict[str, Any]) -> dict[str, Any]:
    """Worker handler ``migrate``: ``payload`` has ``puid`` and optionally ``target``,
    ``aips``, ``reason``; a worker killed part-way is finished by the job's next attempt."""
    if not payload.get("puid"):
        raise UsageError("migrate job without a PUID")
    request = MigrateRequest(str(payload["puid"]), payload.get("target"),
                             list(payload.get("aips") or []), False,
                             str(payload.get("agent") or "dangan"),
                             str(payload.get("reason") or ""))
    return migrate(request, settings).to_dict()
