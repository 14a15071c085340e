"""Updating an AIP: version N+1 with added, replaced or withdrawn files and corrected records.

The new content is ingested as a small transfer: the added and replaced files (at their
destination paths) and the ``--record`` sheet are staged, their digests computed in one
read, their formats identified, looked inside, scanned and checked by the very checks of
ingest (:mod:`ingest.checks`), and a receipt report written. Anything rejecting stops the
update: nothing is stored, the catalogue is as it was. Otherwise the version is built in
staging (only its new objects: new payload, METS, record, report, tag files), written to
every location the storage policy asks for, and committed by its inventory, written last
(:mod:`storage.aip.versions`); the catalogue follows in one transaction.

A process killed at any point leaves the previous version intact and visible; the same
update run again finds the version it had committed (its inventory) and completes it, or
starts it again in a fresh attempt folder: no stored object is ever overwritten.
"""

from __future__ import annotations

import json
import shutil
import uuid as uuidlib
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from ingest import fulltext
from ingest.aip import _write_tag_files
from ingest.analysis import Unit, analyse
from ingest.findings import CheckResult, not_checked
from ingest.formats import FormatInfo
from ingest.pipeline import Ingester, _locked, _now, _run_folder, crash_point
from ingest.report import Report, write_report
from ingest.staging import stage
from metadata_profiles.text import shown_text
from policies import RejectedError, Settings, UsageError
from policies.config import dangan_version
from storage.aip import (
    AipDescription, Event, FileEntry, Inventory, Item, Retention, build_mets, hash_file,
    catalogue_version, inventory_of, new_attempt, parse_mets, publish_version,
    request_fingerprint, stored_by_digest, version_folder, version_objects,
)
from storage.catalogue import models
from storage.copies import Retriever, fetch_copy, lock_for, lock_for_aip, record_class
from storage.locations import ExpectedFile

OBJECTS = "data/objects/"
METS = "data/metadata/mets.xml"
RECORD = "data/metadata/record.json"
TEXTS = "data/metadata/text/"
# checks whose problems about rows describing files already in the AIP are not problems of an
# update: those files are in the AIP, and their 档号 are held by it
_HELD_BY_AIP = ("GD-1-8", "GD-2-1", "GD-2-11", "GD-4-3")
_PERIODS = {"Y": 3, "D30": 2, "D10": 1}


@dataclass
class UpdateRequest:
    """What an update asks for (paths of the new version's bag are under data/objects/)."""

    aip: str
    reason: str
    add: list[tuple[Path, str]] = field(default_factory=list)       # (source, destination)
    replace: list[tuple[str, Path]] = field(default_factory=list)   # (destination, source)
    withdraw: list[str] = field(default_factory=list)
    record: Path | None = None
    agent: str = "dangan"
    record_codes: frozenset[str] | None = None     # only these rows of the sheet (as-update)


@dataclass
class UpdateResult:
    """What became of an update."""

    aip: str
    status: str                     # updated | rejected | already-updated
    version: int | None = None
    changes: dict[str, list[Any]] = field(default_factory=dict)
    report_json: str | None = None
    report_html: str | None = None
    failures: list[dict] = field(default_factory=list)
    bytes_written: int = 0
    objects_written: int = 0

    @property
    def exit_code(self) -> int:
        return 1 if self.status == "rejected" else 0

    def to_dict(self) -> dict:
        return {"aip": self.aip, "status": self.status, "version": self.version,
                "changes": self.changes, "report": {"json": self.report_json,
                                                    "html": self.report_html},
                "failures": self.failures, "bytes_written": self.bytes_written,
                "objects_written": self.objects_written}


def parse_add(value: str) -> tuple[Path, str]:
    """``PATH[:DEST]`` of ``--add``: DEST defaults to the file's name."""
    source, _, dest = value.partition(":") if ":" in value and not Path(value).exists() \
        else (value, "", "")
    return Path(source), logical(dest or Path(source).name)


def parse_replace(value: str) -> tuple[str, Path]:
    """``DEST:PATH`` of ``--replace``."""
    dest, sep, source = value.partition(":")
    if not sep or not dest or not source:
        raise UsageError(f"--replace {value!r}: 应为 DEST:PATH（AIP 内路径:新文件）")
    return logical(dest), Path(source)


def logical(path: str) -> str:
    """A destination as a bag path under ``data/objects/`` (NFC, no '..', no leading '/')."""
    import unicodedata

    clean = unicodedata.normalize("NFC", path.strip().lstrip("/"))
    if clean.startswith(OBJECTS):
        clean = clean[len(OBJECTS):]
    parts = PurePosixPath(clean).parts
    if not parts or any(p in ("..", ".", "") for p in parts):
        raise UsageError(f"路径不合法: {path!r}")
    return OBJECTS + "/".join(parts)


class Updater(Ingester):
    """Makes new versions of the AIPs of one Dangan home (see the module docstring)."""

    def update(self, request: UpdateRequest) -> UpdateResult:
        aip = self.catalogue.get_aip(request.aip)
        if aip.status != "UPLOADED":
            raise UsageError(f"AIP {aip.uuid} 状态为 {aip.status}，不能更新")
        self.request = request
        with _run_folder(self.settings.staging) as run, \
                _locked(self.settings.staging / "locks" / f"update-{aip.uuid}.lock"), \
                self.catalogue.named_lock(f"update:{aip.uuid}"):
            return self._update(aip, request, run)

    # -- the steps ---------------------------------------------------------------------
    def _update(self, aip: models.Aip, request: UpdateRequest, run: Path) -> UpdateResult:
        with self.catalogue.session() as s:
            previous = inventory_of(s, aip.uuid)
        self._check_sources(request)
        mini = run / "update"
        for source, dest in request.add:
            self._place(source, mini / dest[len(OBJECTS):])
        for dest, source in request.replace:
            self._place(source, mini / dest[len(OBJECTS):])
        if request.record is not None:
            self._place(request.record, mini / request.record.name)
        mini.mkdir(parents=True, exist_ok=True)
        staged = stage(mini, run / "staged", self.fixity.algorithms, self.limits,
                       workers=self.workers)
        crash_point("update-staged")
        digests = {f"{OBJECTS}{f.rel}": f for f in staged.files}
        operations = [("add", d, digests[d].digests["sha256"]) for _, d in request.add]
        operations += [("replace", d, digests[d].digests["sha256"]) for d, _ in request.replace]
        operations += [("withdraw", d, "") for d in request.withdraw]
        if request.record is not None:
            operations.append(("record", "", hash_file(request.record, ["sha256"])[1]["sha256"]))
        request_id = request_fingerprint(request.reason, operations)
        adopted = self._adopt(aip, previous, request_id)
        if adopted is not None:
            return adopted
        with self.catalogue.session() as s:     # versions adopted just now come before ours
            previous = inventory_of(s, aip.uuid)
            dedup = stored_by_digest(s, aip.uuid)
        if previous.path and self._request_of(aip.uuid, previous) == request_id:
            return UpdateResult(aip.uuid, "already-updated", previous.number, previous.changes)
        self._check_paths(previous, request)
        analysis = analyse(staged, self.profile)
        rels = sorted(analysis.content)
        analysis.formats.update(self._identify(analysis, rels))
        assessment = self.assessor.assess(analysis, request_id)
        held = {str(i.fields.get("archival_code")) for i in parse_mets(
            self._read(aip.uuid, previous.stored(METS))).items if i.fields.get("archival_code")}
        self._new_files = bool(request.add or request.replace)
        checks = [self._for_update(c, assessment, held) for c in assessment.checks]
        number = previous.number + 1
        update_id = str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"dangan:update:{request_id}"))
        report = Report(
            transfer={"id": update_id, "source": shown_text(str(mini)), "kind": "update",
                      "received": _now(), "files": len(staged.files),
                      "bytes": staged.total_bytes, "fingerprint": request_id,
                      "profile": self.profile.id, "bag": False, "aip": aip.uuid,
                      "version": number, "reason": request.reason},
            checks=checks, tools={k: v.version or "" for k, v in self._tools(analysis).items()},
            dangan_version=dangan_version(),
            units=[{"key": aip.archival_code or "aip", "archival_code": aip.archival_code,
                    "label": aip.label, "aip_uuid": aip.uuid, "files": len(staged.files)}],
            rejected_units=[], policies=self.assessor.policy_versions(),
            decision="rejected" if any(c.rejects for c in checks) else "accepted")
        json_path, html_path, _ = write_report(report, self.settings.reports / update_id)
        if report.rejected:
            self.assessor.reject(request_id)
            return UpdateResult(aip.uuid, "rejected", None, {}, str(json_path), str(html_path),
                                [c.to_dict() for c in report.failures()])
        try:
            return self._make_version(aip, previous, dedup, analysis, assessment, request,
                                      request_id, report, [json_path, html_path], run, number)
        finally:
            self.assessor.reject(request_id)    # reservations not assigned are released

    def _check_paths(self, previous: Inventory, request: UpdateRequest) -> None:
        payload = {p for p in previous.files if p.startswith(OBJECTS)}
        seen: set[str] = set()
        for op, dest in ([("--add", d) for _, d in request.add]
                         + [("--replace", d) for d, _ in request.replace]
                         + [("--withdraw", d) for d in request.withdraw]):
            if dest in seen:
                raise RejectedError(f"拒绝更新: {dest} 在本次更新中出现两次")
            seen.add(dest)
            if op == "--add" and dest in payload:
                raise RejectedError(f"拒绝更新: {op} {dest}: 第 {previous.number} 版已有此文件，"
                                    "替换请用 --replace")
            if op != "--add" and dest not in payload:
                raise RejectedError(f"拒绝更新: {op} {dest}: 第 {previous.number} 版没有此文件")

    @staticmethod
    def _check_sources(request: UpdateRequest) -> None:
        if not request.reason.strip():
            raise UsageError("--reason 不能为空：每个版本都要记录更新原因")
        if not (request.add or request.replace or request.withdraw or request.record):
            raise UsageError("没有要做的更新：请给出 --add、--replace、--withdraw 或 --record")
        for source in [s for s, _ in request.add] + [s for _, s in request.replace] + \
                ([request.record] if request.record else []):
            if not source.is_file():
                raise UsageError(f"{source}: 文件不存在")

    def _request_of(self, uuid: str, version: Inventory) -> str:
        """The request fingerprint of a catalogued version (from its stored inventory)."""
        assert version.path is not None
        return Inventory.from_json(self._read(uuid, version.path)).request

    @staticmethod
    def _place(source: Path, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)

    def _for_update(self, check: CheckResult, assessment: Any, held: set[str]) -> CheckResult:
        """A check's result as it applies to an update: rows describing files the AIP holds
        (their 档号 held by the AIP itself) are no problem of GD-1-8, GD-2-1, GD-2-11,
        GD-4-3; an update that only withdraws files or corrects records brings no file for
        DG-2-0 to find."""
        if check.code == "DG-2-0" and not self._new_files:
            return not_checked(check.code, check.name, "本次更新不含新文件（撤回或更正著录）")
        if check.code not in _HELD_BY_AIP or not check.problems:
            return check
        rows = {(r.row.sheet or None, r.row.row): r for r in assessment.records.rows.values()}

        def ours(problem: Any) -> bool:
            record = rows.get((problem.sheet, problem.row))
            return record is not None and record.code is not None and (
                record.code.text in held or record.code.volume in held
                or not self._wanted(record))

        kept = [p for p in check.problems if not ours(p)]
        if len(kept) == len(check.problems):
            return check
        if kept:
            return replace(check, problems=kept)
        return replace(check, status="passed", problems=[],
                       message=f"{check.message}（更新：所涉档号与文件均属本 AIP）")

    def _wanted(self, record: Any) -> bool:
        """Whether a sheet row belongs to this update (all rows, unless the update takes
        one volume's rows of a whole transfer's sheet)."""
        codes = self.request.record_codes
        code = record.code
        return codes is None or (code is not None and (code.text in codes
                                                       or code.volume in codes))

    def _read(self, uuid: str, stored: str) -> bytes:
        """One stored object, verified on the way out."""
        if getattr(self, "_retriever", None) is None:
            self._retriever = Retriever(self.settings, self.catalogue)
        retriever = self._retriever
        return b"".join(retriever.stream(retriever.file(uuid, stored)))

    # -- building and storing the version ------------------------------------------------
    def _make_version(self, aip: models.Aip, previous: Inventory,
                      dedup: dict[str, tuple[str, int]], analysis: Any, assessment: Any,
                      request: UpdateRequest, request_id: str, report: Report,
                      report_files: list[Path], run: Path, number: int) -> UpdateResult:
        old = parse_mets(self._read(aip.uuid, previous.stored(METS)))
        record = json.loads(self._read(aip.uuid, previous.stored(RECORD))) \
            if RECORD in previous.files else {}
        folder_name = version_folder(number, new_attempt())
        root = run / "version"
        folder = root / folder_name
        staged = {f"{OBJECTS}{f.rel[len(analysis.content_prefix):]}": f
                  for f in analysis.staged.files if f.rel[len(analysis.content_prefix):]
                  in analysis.content}
        replaced = {d for d, _ in request.replace}
        withdrawn = set(request.withdraw)
        added = [d for _, d in request.add]
        files: dict[str, dict[str, Any]] = {p: dict(f) for p, f in previous.files.items()
                                             if p not in withdrawn}
        objects: dict[str, ExpectedFile] = {}
        for path in sorted(set(added) | replaced):
            got = staged[path]
            sha = got.digests["sha256"]
            if sha in dedup and dedup[sha][1] == got.size:
                stored = dedup[sha][0]      # these bytes are stored already: not again
            else:
                stored = f"{folder_name}{path}"
                target = root / stored
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(analysis.staged.root / got.rel, target)
                objects[stored] = ExpectedFile(got.size, dict(got.digests))
                dedup[sha] = (stored, got.size)
            files[path] = {"size": got.size, "digests": dict(got.digests), "stored": stored}
        items, changed_fields = self._items(old, assessment, added)
        if not (added or replaced or withdrawn or changed_fields):
            return UpdateResult(aip.uuid, "unchanged", previous.number, {})
        entries = self._entries(old, files, staged, analysis, items, withdrawn, replaced)
        tools = self._tools(analysis)
        kind = ("withdrawal" if withdrawn and not (added or replaced) else
                "replacement" if replaced and not added else "modification")
        changes = {"added": sorted(added), "replaced": sorted(replaced),
                   "withdrawn": sorted(withdrawn), "records": changed_fields}
        now = _now()
        event = Event(str(uuidlib.uuid4()), kind, now, "pass",
                      f"version {number} supersedes version {previous.number}: "
                      f"{request.reason}",
                      json.dumps({"supersedes": previous.number, **changes},
                                 ensure_ascii=False, sort_keys=True),
                      (tools["dangan"].id,),
                      tuple(e.id for e in entries if e.path in set(added) | replaced))
        checked = [e for e in self._events(Unit("update", aip.archival_code, aip.label),
                                           analysis, tools, report, report.transfer["id"])
                   if e.type != "ingestion"]
        retention = _higher(old.retention, self._retention(items, old.retention))
        # the text of the new files, for search (the old text of replaced, withdrawn files goes)
        for gone in replaced | withdrawn:
            text_path = f"{TEXTS}{gone[len(OBJECTS):]}.txt"
            files.pop(text_path, None)
            entries = [e for e in entries if e.path != text_path]
        # so do the preservation and access copies made from those bytes (ingest.normalise)
        stale = {e.path for e in entries if e.derived_from in replaced | withdrawn}
        for path in stale:
            files.pop(path, None)
        entries = [e for e in entries if e.path not in stale]
        unit = Unit("update", aip.archival_code, aip.label,
                    files=[f for f in analysis.staged.files
                           if f.rel[len(analysis.content_prefix):] in analysis.content])
        text = fulltext.extract_unit(unit, analysis, run / "text", self.fulltext)
        checked.append(fulltext.premis_event(text.results, (tools["dangan"].id,), now))
        for path, source in text.files:
            if not path.endswith(".txt"):
                continue        # the extraction summary of version 1 stays
            size, found = hash_file(source, self.fixity.algorithms)
            entries.append(FileEntry(f"file-{uuidlib.uuid4().hex[:12]}", path,
                                     path.rsplit("/", 1)[-1], size, found, "text/plain", None,
                                     None, None, "text"))
            self._stage_object(root, folder_name, path, source, files, objects, size, found)
        # the new version's metadata and logs: its report beside the ingest report
        metadata: dict[str, Path] = {}
        for source in report_files:
            metadata[f"data/logs/update-v{number}-{source.name.replace('ingest-', '')}"] = source
        record = dict(record, items=[{"id": i.id, "level": i.level, "parent": i.parent_id,
                                      "fields": i.fields} for i in items],
                      version=number)
        record_file = run / "record.json"
        record_file.write_text(json.dumps(record, ensure_ascii=False, indent=2, sort_keys=True),
                               encoding="utf-8")
        metadata[RECORD] = record_file
        for path, source in metadata.items():
            size, found = hash_file(source, self.fixity.algorithms)
            entry = FileEntry(f"file-v{number}-{len(entries) + 1:05d}", path, source.name, size,
                              found, "application/json" if path.endswith(".json") else
                              "text/html", None, None, None, "metadata")
            entries = [e for e in entries if e.path != path] + [entry]
            self._stage_object(root, folder_name, path, source, files, objects, size, found)
        description = AipDescription(
            uuid=aip.uuid, archival_code=old.archival_code, label=old.label, created=now,
            creator_agent_id=tools["dangan"].id, source_organization=old.source_organization,
            files=tuple(entries), items=tuple(items),
            events=_carried(old.events, entries) + tuple(checked) + (event,),
            agents=tuple({a.id: a for a in (*old.agents, *tools.values())}.values()),
            retention=retention, profile=old.profile)
        mets_file = run / "mets.xml"
        mets_file.write_bytes(build_mets(description))
        size, found = hash_file(mets_file, self.fixity.algorithms)
        self._stage_object(root, folder_name, METS, mets_file, files, objects, size, found)
        self._tag_files(root, folder_name, aip, files, objects)
        inventory = Inventory(aip.uuid, number, previous.number, now, request.agent,
                              request.reason, kind, files, changes,
                              {**previous.withdrawn, **{p: {"version": previous.number,
                                                           "stored": previous.stored(p)}
                                                       for p in withdrawn}},
                              request_id, f"{folder_name}inventory.json")
        crash_point("update-built")
        locations = self._locations(retention)
        published = publish_version(locations, aip.uuid, root, objects, inventory,
                                    lock=self._lock(retention), crash=crash_point)
        crash_point("update-stored")
        objects[inventory.path] = ExpectedFile(*hash_file(root / inventory.path, ["sha256"]))
        self._commit(aip, inventory, description, record, objects, assessment, root)
        return UpdateResult(aip.uuid, "updated", number, changes,
                            str(report_files[0]), str(report_files[1]),
                            [c.to_dict() for c in report.failures()],
                            published.bytes_written, published.objects_written)

    @staticmethod
    def _stage_object(root: Path, folder_name: str, path: str, source: Path, files: dict,
                      objects: dict, size: int, found: dict[str, str]) -> None:
        stored = f"{folder_name}{path}"
        target = root / stored
        target.parent.mkdir(parents=True, exist_ok=True)
        if source != target:
            shutil.copyfile(source, target)
        objects[stored] = ExpectedFile(size, found)
        files[path] = {"size": size, "digests": found, "stored": stored}

    def _tag_files(self, root: Path, folder_name: str, aip: models.Aip, files: dict,
                   objects: dict) -> None:
        """bagit.txt, bag-info.txt and the manifests of the version's whole logical bag."""
        tags = root / "tags"
        tags.mkdir()
        payload = {p: f for p, f in files.items() if p.startswith("data/")}
        digests = {p: {a: f["digests"].get(a, "") for a in self.fixity.algorithms}
                   for p, f in payload.items()}
        sizes = {p: int(f["size"]) for p, f in payload.items()}
        _write_tag_files(tags, aip.uuid, Unit("update", aip.archival_code, aip.label),
                         self.fixity.algorithms, digests, sizes,
                         self.settings.get("ingest", "source_organization"))
        for name in list(files):
            if "/" not in name:
                del files[name]
        for tag in sorted(tags.iterdir()):
            size, found = hash_file(tag, self.fixity.algorithms)
            self._stage_object(root, folder_name, tag.name, tag, files, objects, size, found)

    def _items(self, old: AipDescription, assessment: Any,
               added: list[str]) -> tuple[list[Item], list[dict]]:
        """The items of the new version: the old ones, corrected by the ``--record`` rows
        with the same 档号; rows with a new 档号 are new items."""
        items = {i.id: i for i in old.items}
        by_code = {str(i.fields.get("archival_code")): i.id for i in old.items
                   if i.fields.get("archival_code")}
        parent = next((i.id for i in old.items if i.level != "件"), None)
        changed: list[dict] = []
        for record in assessment.records.rows.values():
            if not self._wanted(record):
                continue
            values = {k: v for k, v in record.values.items() if v not in (None, "")}
            code = str(values.get("archival_code") or "")
            if code in by_code:
                item = items[by_code[code]]
                diff = {k: [item.fields.get(k), v] for k, v in values.items()
                        if item.fields.get(k) != v}
                if diff:
                    fields = {**item.fields, **values}
                    items[item.id] = replace(item, fields=fields,
                                             label=str(fields.get("title") or item.label))
                    changed.append({"archival_code": code, "fields": diff})
            else:
                item_id = f"item-{len(items) + 1:03d}"
                while item_id in items:
                    item_id = f"item-{int(item_id[5:]) + 1:03d}"
                fields = {"aggregation_level": "文件", **values}
                items[item_id] = Item(item_id, str(fields.get("title") or code), fields, "件",
                                      parent)
                changed.append({"archival_code": code, "fields": {
                    k: [None, v] for k, v in values.items()}, "new": True})
        return list(items.values()), changed

    def _entries(self, old: AipDescription, files: dict, staged: dict, analysis: Any,
                 items: list[Item], withdrawn: set[str], replaced: set[str]) -> list[FileEntry]:
        """The METS file entries of the new version's files."""
        by_name = {}
        for item in items:
            name = item.fields.get("computer_filename")
            if name:
                by_name[OBJECTS + str(name)] = item.id
        entries = [e for e in old.files if e.path not in withdrawn | replaced
                   and e.path in files]
        previous = {e.path: e for e in old.files}
        unknown = FormatInfo(None, None, None, None)
        volume = next((i.id for i in items if i.level != "件"),
                      items[0].id if len(items) == 1 else None)
        for path in sorted(p for p in staged if p not in {e.path for e in entries}):
            got = staged[path]
            fmt = analysis.formats.get(path[len(OBJECTS):]) or unknown
            # a file no row describes belongs to the volume (or the AIP's only item)
            item = by_name.get(path) or (previous[path].item_id if path in previous else
                                         volume)
            entries.append(FileEntry(f"file-{uuidlib.uuid4().hex[:12]}", path,
                                     got.original_name, got.size, dict(got.digests), fmt.mime,
                                     fmt.puid, fmt.format_name, fmt.format_version, "original",
                                     item))
        return entries

    def _retention(self, items: list[Item], old: Retention | None) -> Retention | None:
        """The highest 保管期限 of the version's items (a volume keeps the longest)."""
        best = old
        for item in items:
            period = item.fields.get("retention_period")
            if isinstance(period, str) and period in _PERIODS:
                candidate = Retention(period, None if period == "Y" else
                                      (best.expiry if best else None),
                                      best.open_date if best else None,
                                      "highest retention of the volume's items")
                best = _higher(best, candidate)
        return best

    def _lock(self, retention: Retention | None) -> Any:
        """The WORM lock the new objects get (as the AIP's at ingest), or None."""
        if retention is None:
            return None
        return lock_for(retention.period, retention.expiry, self.worm)

    def _locations(self, retention: Retention | None) -> list[Any]:
        return self.location_set.for_class(record_class(retention.period if retention else None,
                                                        self.storage_policy))

    # -- an update committed in storage by an earlier, interrupted run -------------------
    def _adopt(self, aip: models.Aip, previous: Inventory, request_id: str) -> UpdateResult | None:
        """Catalogue the versions an interrupted run committed in storage (storage is the
        system of record), completing them at every location; the result when the one
        committed is this very update."""
        from storage.aip import committed_inventories, discard_uncommitted

        locations = self.location_set.for_class(record_class(aip.retention_period,
                                                             self.storage_policy))
        found: dict[int, tuple[Any, Inventory]] = {}
        for location in locations:
            for inventory in committed_inventories(location, aip.uuid):
                if inventory.number > previous.number:
                    found.setdefault(inventory.number, (location, inventory))
        for location in locations:
            discard_uncommitted(location, aip.uuid)
        result = None
        for number in sorted(found):
            location, inventory = found[number]
            mine = self._complete(aip, location, inventory, locations)
            if inventory.request == request_id:
                result = UpdateResult(aip.uuid, "already-updated", number, inventory.changes,
                                      bytes_written=mine)
        return result

    def _complete(self, aip: models.Aip, source: Any, inventory: Inventory,
                  locations: list[Any]) -> int:
        """Bring a committed version to every location and into the catalogue."""
        expected = version_objects(inventory)
        scratch = self.settings.staging / f"adopt-{aip.uuid}-{inventory.number}"
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            # every object of the version, read back against its inventory on the way
            fetch_copy(source, aip.uuid, scratch, expected)
            others = [loc for loc in locations if loc.name != source.name]
            written = publish_version(others, aip.uuid, scratch, expected, inventory,
                                      lock=lock_for_aip(aip, self.worm),
                                      crash=crash_point).bytes_written
            expected[inventory.path] = ExpectedFile(*hash_file(scratch / inventory.path,
                                                               ["sha256"]))
            description = parse_mets(self._bytes(aip.uuid, inventory.stored(METS), scratch))
            record = json.loads(self._bytes(aip.uuid, inventory.stored(RECORD), scratch)) \
                if RECORD in inventory.files else {}
            self._commit(aip, inventory, description, record, expected, None, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return written

    # -- the catalogue -------------------------------------------------------------------
    def _commit(self, aip: models.Aip, inventory: Inventory, description: AipDescription,
                record: dict, objects: dict[str, ExpectedFile], assessment: Any,
                local: Path | None = None) -> None:
        from storage.catalogue import protect_description

        texts = self._texts(aip.uuid, inventory, local)
        documents = _documents(description, texts, self.settings.home)
        masked, record, protected = protect_description(
            description, record, self.profile.protected_fields, self.assessor.vault)
        with self.catalogue.session() as s:
            catalogue_version(self.catalogue, s, inventory, masked, record, objects, documents,
                              protected)
            new_codes = {str(i.fields["archival_code"]): aip.uuid for i in description.items
                         if i.fields.get("archival_code")}
            if assessment is not None and inventory.request:
                self.assessor.registry.assign(s, inventory.request, new_codes)

    def _texts(self, uuid: str, inventory: Inventory, local: Path | None) -> dict[str, str]:
        """The extracted full text the version carries (for its search documents): what
        this version stores from ``local`` (its objects in staging), the rest from storage."""
        texts = {}
        for path, entry in inventory.files.items():
            if path.startswith(TEXTS) and path.endswith(".txt"):
                texts[path] = self._bytes(uuid, entry["stored"], local).decode("utf-8",
                                                                               "replace")
        return texts

    def _bytes(self, uuid: str, stored: str, local: Path | None) -> bytes:
        """A stored object of a version being committed: from ``local`` (the version's
        objects in staging) when it is there, else from storage (an earlier version's)."""
        here = local / stored if local is not None else None
        return here.read_bytes() if here is not None and here.is_file() \
            else self._read(uuid, stored)


def _documents(description: AipDescription, texts: dict[str, str], home: Path) -> list:
    from ingest.redescribe import documents_from_aip

    return documents_from_aip(description, texts, home)


def _carried(events: tuple[Event, ...], entries: list[FileEntry]) -> tuple[Event, ...]:
    """The earlier versions' events, each linked to those of its files this version still
    holds (the files replaced or withdrawn are described in the versions that hold them)."""
    present = {e.id for e in entries}
    return tuple(replace(e, file_ids=tuple(f for f in e.file_ids if f in present))
                 if set(e.file_ids) - present else e for e in events)


def _higher(a: Retention | None, b: Retention | None) -> Retention | None:
    """The longer of two retention decisions (Y > D30 > D10; the later expiry)."""
    if a is None or b is None:
        return a or b
    if _PERIODS.get(b.period, 0) > _PERIODS.get(a.period, 0):
        return b
    if _PERIODS.get(b.period, 0) == _PERIODS.get(a.period, 0) and (b.expiry or "") > (a.expiry or ""):
        return b
    return a


def update(request: UpdateRequest, settings: Settings, profile: str | None = None) -> UpdateResult:
    """Make the next version of one AIP (see :class:`Updater`)."""
    return Updater(settings, profile).update(request)


@dataclass
class BulkResult:
    """``dangan ingest --as-update``: the versions made and the new AIPs' ingest."""

    updates: list[UpdateResult]
    unchanged: list[str]
    ingested: Any = None
    held: frozenset[str] = frozenset()          # keys of the units that were updates

    @property
    def exit_code(self) -> int:
        """1 when an update or a new volume was refused (the held volumes, refused by the
        ordinary ingest as duplicates, were updated instead)."""
        codes = [u.exit_code for u in self.updates]
        if self.ingested is not None:
            refused = [u for u in self.ingested.rejected_units if u.get("key") not in self.held]
            codes.append(1 if self.ingested.status == "rejected" or refused else 0)
        return max(codes, default=0)

    def to_dict(self) -> dict:
        return {"status": "rejected" if self.exit_code else "accepted",
                "updates": [u.to_dict() for u in self.updates], "unchanged": self.unchanged,
                "ingest": self.ingested.to_dict() if self.ingested is not None else None}


def ingest_as_update(source: Path, settings: Settings, profile: str | None = None,
                     reason: str | None = None, progress: Any = None) -> BulkResult:
    """Ingest a transfer whose household volumes may already be held: each held volume (same
    档号) gets a new version with the files that are new or changed and its rows of the sheet
    as record corrections; the other volumes become new AIPs by the ordinary ingest."""
    from sqlalchemy import select

    from ingest.analysis import plan_units
    from ingest.pipeline import ingest

    updater = Updater(settings, profile)
    source = Path(source).absolute()
    reason = reason or f"按移交 {shown_text(source.name)} 更新（--as-update）"
    updates, unchanged, held_codes = [], [], set()
    with _run_folder(settings.staging) as run:
        staged = stage(source, run / "transfer", updater.fixity.algorithms, updater.limits,
                       workers=updater.workers)
        analysis = analyse(staged, updater.profile)
        units = plan_units(analysis, source.name)
        sheet = analysis.staged.root / analysis.sheet_file.rel if analysis.sheet_file else None
        for unit in units:
            codes = {unit.archival_code} if unit.archival_code else {
                str(r.values.get("archival_code")) for r in unit.rows
                if r.values.get("archival_code")}
            with updater.catalogue.session() as s:
                aip = s.scalars(select(models.Aip).join(
                    models.Item, models.Item.aip_uuid == models.Aip.uuid).where(
                    models.Item.archival_code.in_(codes),
                    models.Aip.status == "UPLOADED")).first() if codes else None
                if aip is None:
                    continue
                previous = inventory_of(s, aip.uuid)
            held_codes.add(unit.key)
            request = UpdateRequest(aip.uuid, reason, record=sheet,
                                    record_codes=frozenset(codes))
            for f in unit.files:
                rel = f.rel[len(analysis.content_prefix):]
                dest, path = OBJECTS + rel, analysis.staged.root / f.rel
                if dest not in previous.files:
                    request.add.append((path, dest))
                elif previous.files[dest]["digests"].get("sha256") != f.digests["sha256"]:
                    request.replace.append((dest, path))
            result = Updater(settings, profile).update(request)
            if result.status == "unchanged":
                unchanged.append(aip.uuid)
            else:
                updates.append(result)
    ingested = None
    if any(u.key not in held_codes for u in units):
        ingested = ingest(source, settings, profile, progress, accept_valid=True)
    return BulkResult(updates, unchanged, ingested, frozenset(held_codes))


__all__ = ["BulkResult", "UpdateRequest", "UpdateResult", "Updater", "ingest_as_update",
           "logical", "parse_add", "parse_replace", "update"]
