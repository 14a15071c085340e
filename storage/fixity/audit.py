"""Fixity audits: checking stored copies, checkpointed, and repairing what is bad.

An audit *run* checks a planned list of copies (all copies, those due by the fixity policy,
one AIP, or one location). A full check lists the copy, reads its tag files in this process
(they are small and their manifests are compared entry by entry), and streams every payload
file once through all its recorded algorithms on worker processes. File results are
checkpointed in batches: a run that was interrupted (killed, rebooted, Ctrl-C) is resumed by
the next ``dangan audit`` with the same request, and files already read are not read again.
Every finished copy check is recorded as it finishes (see :mod:`storage.fixity.records`).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import signal
import socket
import time
import uuid as uuidlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Self

from sqlalchemy import delete, select

from policies import Settings, load_fixity_policy, load_storage_policy
from policies.errors import (
    ConfigError,
    NotFoundError,
    ObjectNotFound,
    StorageError,
    UsageError,
)
from storage.catalogue import auditlog
from storage.catalogue import Catalogue, utcnow
from storage.fixity.compare import (
    Manifests,
    algorithm_chooser,
    compare_full,
    compare_quick,
    is_tag_file,
    manifest_algorithm,
    parse_manifest,
)
from storage.fixity.models import AuditProgress, AuditRun, AuditRunItem, CopyCheck
from storage.fixity.records import (
    CheckOutcome,
    as_utc,
    expected_files,
    last_full_checks,
    precise_now,
    record_check,
)
from storage.fixity import readahead
from storage.fixity.scan import FileResult, FileTask, Scanner, worker_location
from storage.fixity.schedule import Plan, plan_copies
from storage.locations import ExpectedFile, Location, ObjectInfo, open_location

AVAILABLE = frozenset(hashlib.algorithms_available)
TAG_FILE_MAX = 256 << 20     # a tag file larger than this is hashed but not parsed
HEAD_THREADS = 8             # metadata requests in flight during a quick check

ProgressFn = Callable[..., None]


def _no_progress(kind: str, **info: Any) -> None:
    return None


@dataclass(frozen=True)
class AuditRequest:
    """What ``dangan audit`` was asked to do.

    Attributes:
        depth: ``full`` (every byte read and hashed) or ``quick`` (no bytes read).
        aip: only this AIP (all its copies).
        location: only copies at this location.
        everything: every copy in scope, not only those due.
        repair: apply the repair policy to copies found bad.
        actor: who asked (recorded in events and the audit log).
    """

    depth: str = "full"
    aip: str | None = None
    location: str | None = None
    everything: bool = False
    repair: bool = True
    actor: str = "dangan"

    @property
    def scope_key(self) -> str:
        mode = "aip" if self.aip else "all" if self.everything else "due"
        return f"{self.depth}|{mode}|{self.aip or ''}|{self.location or ''}"


@dataclass
class AuditResult:
    """What a run did.

    Attributes:
        run_id: the run's identifier; resumed: it continued an interrupted run.
        checks: every copy check of the run (resumed runs include the earlier ones).
        repairs: repair records (see :class:`storage.fixity.repair.RepairResult`).
        deferred: due copies left for another day by the byte budget.
    """

    run_id: str
    depth: str
    resumed: bool = False
    checks: list[CheckOutcome] = field(default_factory=list)
    repairs: list[Any] = field(default_factory=list)
    deferred: int = 0
    anchors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def bad_copies(self) -> list[CheckOutcome]:
        """Copies whose check failed and that no successful repair has fixed."""
        repaired = {(r.aip_uuid, r.location) for r in self.repairs if r.status == "done"}
        return [c for c in self.checks if not c.found_nothing
                and (c.aip_uuid, c.location) not in repaired]

    @property
    def exit_code(self) -> int:
        """0 when every copy checked is intact (repaired ones included), else 1."""
        return 1 if self.bad_copies else 0

    def summary(self) -> dict[str, Any]:
        """Counts for people and machines."""
        return {
            "copies": len(self.checks),
            "passed": sum(c.outcome == "pass" for c in self.checks),
            # quick checks: every file present and sized; no byte was read
            "present": sum(c.outcome == "present" for c in self.checks),
            "failed": sum(c.outcome == "fail" for c in self.checks),
            "errors": sum(c.outcome == "error" for c in self.checks),
            "repaired": sum(r.status == "done" for r in self.repairs),
            "awaiting_approval": sum(r.status == "pending" for r in self.repairs),
            "unrepairable": sum(r.status == "unrepairable" for r in self.repairs),
            "repair_failed": sum(r.status == "failed" for r in self.repairs),
            "files_read": sum(c.files_read for c in self.checks),
            "files_resumed": sum(c.files_resumed for c in self.checks),
            "bytes_read": sum(c.bytes_read for c in self.checks),
            "deferred_by_budget": self.deferred,
            "seconds": round(self.seconds, 3),
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {"run": self.run_id, "depth": self.depth, "resumed": self.resumed,
                "summary": self.summary(), "exit_code": self.exit_code,
                "checks": [c.to_dict() for c in self.checks],
                "repairs": [r.to_dict() for r in self.repairs], "anchors": self.anchors}


def crash_point(checkpoints: int) -> None:
    """Fault injection for the resume tests: ``DANGAN_CRASH_AT=audit-checkpoint:N`` kills the
    process right after its N-th checkpoint was committed."""
    wanted = os.environ.get("DANGAN_CRASH_AT", "")
    if wanted.startswith("audit-checkpoint:") and int(wanted.split(":", 1)[1]) == checkpoints:
        os.kill(os.getpid(), signal.SIGKILL)


class Auditor:
    """Checks the copies of one Dangan home.

    Arguments:
        settings: the home's settings (fixity and storage policies, ``[audit]`` settings).
        catalogue: an open catalogue (opened from the settings if not given).
        progress: called as ``progress(kind, **info)`` while work advances.
    """

    def __init__(self, settings: Settings, catalogue: Catalogue | None = None, *,
                 progress: ProgressFn | None = None) -> None:
        self.settings = settings
        self.catalogue = catalogue or Catalogue.open(settings)
        self.policy = load_fixity_policy(settings)
        self.storage = load_storage_policy(settings)
        self.progress = progress or _no_progress
        self.scanner = Scanner(settings.int("audit", "workers"),
                               cold=bool(settings.get("audit", "cold_read")),
                               batch_files=self.policy.checkpoint_files, settings=settings)
        self._locations: dict[str, Location] = {}
        self._checkpoints = 0
        self._copy_start = 0

    def close(self) -> None:
        """Stop worker processes."""
        self.scanner.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def location(self, name: str) -> Location:
        """A storage location by its policy name (opened once)."""
        if name not in self._locations:
            self._locations[name] = open_location(self.storage.location(name),
                                                  settings=self.settings)
        return self._locations[name]

    # -- runs ---------------------------------------------------------------------------------
    def plan(self, request: AuditRequest) -> Plan:
        """The copies a run with this request would check now."""
        request = self._resolve(request)
        return plan_copies(self.catalogue, self.policy, self.storage, now=utcnow(),
                           depth=request.depth, aip=request.aip, location=request.location,
                           everything=request.everything)

    def _resolve(self, request: AuditRequest) -> AuditRequest:
        """The request checked, with the AIP named by its full UUID."""
        if request.depth not in ("full", "quick"):
            raise UsageError(f"unknown depth {request.depth!r}: full or quick")
        if request.location:
            try:
                self.storage.location(request.location)
            except ConfigError as exc:
                raise UsageError(str(exc)) from exc
        if request.aip:
            request = replace(request, aip=self.catalogue.get_aip(request.aip).uuid)
        return request

    def run(self, request: AuditRequest) -> AuditResult:
        """Run (or resume) an audit and apply the repair policy to what it finds bad."""
        started = time.monotonic()
        ahead = readahead.active()
        if ahead is not None and ahead.planned.wait(60) and ahead.entries:
            started = min(started, ahead.started)   # includes what was read ahead for it
        with self.exclusive():
            auditlog.record_policy_changes(self.catalogue, self.settings, request.actor)
            request = self._resolve(request)
            self._close_stale_runs()
            run, resumed, deferred = self._resume_or_start(request)
            result = AuditResult(run.id, run.depth, resumed, deferred=deferred)
            result.checks.extend(self._finished_checks(run.id))
            items = self._pending_items(run.id)
            self.progress("plan", run=run.id, resumed=resumed, depth=run.depth, copies=len(items),
                          bytes=sum(i.bytes for i in items), done=len(result.checks))
            for item in items:
                outcome = self.check_copy(item.aip_uuid, item.location, run.depth,
                                          purpose="audit", actor=request.actor, run_id=run.id)
                result.checks.append(outcome)
            if request.repair:
                from storage.fixity.repair import Repairer

                result.repairs = Repairer(self).handle(
                    [c for c in result.checks if c.outcome == "fail"], actor=request.actor)
            result.seconds = time.monotonic() - started
            self._finish(run, result, request.actor)
            anchored = auditlog.write_anchors(self.catalogue, self.settings)
            result.anchors = [a.location for a in anchored.anchors if a.message == "written"]
        return result

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """One audit run per home at a time; a stale run is one whose lock is free."""
        path = self.settings.home / "locks" / "audit.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise UsageError("another audit is running in this Dangan home") from exc
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _close_stale_runs(self) -> None:
        with self.catalogue.session() as s:
            for run in s.scalars(select(AuditRun).where(AuditRun.status == "running")):
                run.status = "interrupted"

    def _resume_or_start(self, request: AuditRequest) -> tuple[AuditRun, bool, int]:
        with self.catalogue.session() as s:
            run = s.scalars(select(AuditRun).where(AuditRun.status == "interrupted",
                                                   AuditRun.scope_key == request.scope_key)
                            .order_by(AuditRun.started_at.desc())).first()
            if run is not None:
                run.status, run.pid, run.host = "running", os.getpid(), socket.gethostname()
                self.catalogue.append_audit(s, request.actor, "audit-resume", run.id,
                                            {"scope": run.scope})
                return run, True, 0
        plan = self.plan(request)
        run = AuditRun(id=str(uuidlib.uuid4()), started_at=utcnow(), status="running",
                       depth=request.depth, scope={"aip": request.aip, "location": request.location,
                                                   "everything": request.everything},
                       scope_key=request.scope_key, actor=request.actor, pid=os.getpid(),
                       host=socket.gethostname(), summary={})
        with self.catalogue.session() as s:
            s.add(run)
            s.flush()
            s.add_all(AuditRunItem(run_id=run.id, aip_uuid=c.aip_uuid, location=c.location,
                                   position=i, bytes=c.bytes, reason=c.reason, state="pending")
                      for i, c in enumerate(plan.copies))
            self.catalogue.append_audit(s, request.actor, "audit-start", run.id, {
                "depth": request.depth, "scope": run.scope, "copies": len(plan.copies),
                "bytes": plan.bytes, "deferred": len(plan.deferred)})
        return run, False, len(plan.deferred)

    def _pending_items(self, run_id: str) -> list[AuditRunItem]:
        with self.catalogue.session() as s:
            return list(s.scalars(select(AuditRunItem).where(AuditRunItem.run_id == run_id,
                                                             AuditRunItem.state == "pending")
                                  .order_by(AuditRunItem.position)))

    def _finished_checks(self, run_id: str) -> list[CheckOutcome]:
        with self.catalogue.session() as s:
            rows = s.scalars(select(CopyCheck).join(
                AuditRunItem, (AuditRunItem.check_id == CopyCheck.id))
                .where(AuditRunItem.run_id == run_id).order_by(AuditRunItem.position)).all()
        return [CheckOutcome.from_row(r) for r in rows]

    def _finish(self, run: AuditRun, result: AuditResult, actor: str) -> None:
        with self.catalogue.session() as s:
            row = s.get(AuditRun, run.id)
            row.status, row.finished_at, row.summary = "finished", utcnow(), result.summary()
            s.execute(delete(AuditProgress).where(AuditProgress.run_id == run.id))
            self.catalogue.append_audit(s, actor, "audit-finish", run.id, result.summary())

    # -- one copy ------------------------------------------------------------------------------
    def check_copy(self, uuid: str, location: str, depth: str = "full", *, purpose: str = "audit",
                   actor: str = "dangan", run_id: str | None = None) -> CheckOutcome:
        """Check one copy now, record the result and return it."""
        self.progress("copy-start", aip=uuid, location=location, depth=depth)
        outcome = CheckOutcome(str(uuidlib.uuid4()), uuid, location, depth, purpose,
                               precise_now(), precise_now(), "error")
        try:
            expected = expected_files(self.catalogue, uuid)
            if not expected:
                raise NotFoundError(f"the catalogue has no files for AIP {uuid}")
            if depth == "quick":
                self._quick(outcome, expected)
            else:
                self._full(outcome, expected, run_id)
        except (StorageError, ConfigError, NotFoundError) as exc:
            outcome.outcome, outcome.note = "error", f"{type(exc).__name__}: {exc}"
        outcome.finished = precise_now()
        record_check(self.catalogue, outcome, actor=actor, run_id=run_id)
        self.progress("copy-done", outcome=outcome)
        return outcome

    def _listing(self, location: Location, uuid: str) -> dict[str, ObjectInfo]:
        return list_copy(location, uuid)

    def _quick(self, outcome: CheckOutcome, expected: dict[str, ExpectedFile]) -> None:
        location = self.location(outcome.location)
        listing = self._with_stored_checksums(location, outcome.aip_uuid,
                                              self._listing(location, outcome.aip_uuid))
        findings, compared = compare_quick(expected, listing)
        outcome.files, outcome.findings = len(expected), findings
        outcome.algorithms = ("sha256",) if compared else ()
        outcome.outcome = "fail" if findings else "present"
        outcome.note = (f"stored checksums compared for {compared} of {len(expected)} files"
                        + ("" if compared else " (this location keeps none: presence and size "
                           "only)"))

    @staticmethod
    def _with_stored_checksums(location: Location, uuid: str,
                               listing: dict[str, ObjectInfo]) -> dict[str, ObjectInfo]:
        """Ask for the checksum a backend keeps (S3) where the listing did not give one.

        A HEAD per object: metadata only, no content bytes are read.
        """
        wanting = [p for p, info in listing.items() if info.checksum_sha256 is None]
        if not wanting:
            return listing

        def head(path: str) -> ObjectInfo:
            try:
                return location.head(uuid, path)
            except StorageError:
                return listing[path]

        with ThreadPoolExecutor(HEAD_THREADS) as pool:
            return {**listing, **{info.path: info for info in pool.map(head, wanting)}}

    def _full(self, outcome: CheckOutcome, expected: dict[str, ExpectedFile],
              run_id: str | None) -> None:
        """Read every file of the copy and compare.

        The payload files the catalogue names are handed to the scanner at once, with the
        catalogue's algorithms; when worker processes read them, one of the workers lists
        the copy and reads its tag files meanwhile (the listing of 20,000 files takes as
        long as reading a good part of them). Then every
        listed file that was not read, or was read without an algorithm its manifests use,
        is read; results for files the listing does not show are left out (those files are
        missing).
        """
        name, uuid = outcome.location, outcome.aip_uuid
        spec, location = self.storage.location(name), self.location(name)
        done = self._checkpointed(run_id, uuid, name) if run_id else {}
        outcome.files_resumed = len(done)
        self._copy_start = self.scanner.bytes_read
        read: dict[str, FileResult] = {}
        early = [FileTask(p, want.size, _recorded(want)) for p, want in sorted(expected.items())
                 if not is_tag_file(p) and p not in done] if location.has_aip(uuid) else []
        tags = {p: want for p, want in expected.items() if is_tag_file(p)}
        if self.scanner.prepare(spec, uuid, early):
            # a worker lists the copy and parses its manifests while the others read
            surveying = self.scanner.submit(survey_in_worker, spec, uuid, tags)
            self._scan(spec, location, uuid, early, read, run_id)
            listing, (manifests, results) = surveying.result()
        else:
            listing, (manifests, results) = survey_copy(location, uuid, tags)
            self._scan(spec, location, uuid, early, read, run_id)
        tag_paths = set(results)
        results.update(done)
        known = set(expected) | manifests.paths()
        choose = algorithm_chooser(expected, manifests, AVAILABLE)
        late = []
        for path in sorted(known & set(listing)):
            if path in results:
                continue
            wanted = choose(path)
            got = read.get(path)
            if got is None or got.error or not set(wanted) <= set(got.digests):
                late.append(FileTask(path, listing[path].size, wanted))
        self._scan(spec, location, uuid, late, read, run_id)
        results.update((p, r) for p, r in read.items() if p in listing and p not in results)
        counted = [r for p, r in results.items() if p in tag_paths or (p in read and p in listing)]
        outcome.files_read = len(counted)
        outcome.bytes_read = sum(max(r.size, 0) for r in counted)
        outcome.files = len(known)
        outcome.algorithms = tuple(sorted({a for t in late for a in t.algorithms}
                                          | {a for r in results.values() for a in r.digests},
                                          key=lambda n: (n != "sha256", n)))
        outcome.findings = compare_full(expected, listing, results, manifests)
        outcome.outcome = "fail" if outcome.findings else "pass"
        if not listing:
            outcome.note = f"no copy of AIP {uuid} at {name}"

    def _scan(self, spec: Any, location: Location, uuid: str, tasks: list[FileTask],
              into: dict[str, FileResult], run_id: str | None) -> None:
        """Read ``tasks`` into ``into``, checkpointing the results: every batch, or (with
        the policy's ``checkpoint_seconds``) what was read since the last checkpoint once
        that long has passed, and what is left at the end."""
        if not tasks:
            return
        pending: list[FileResult] = []
        last = time.monotonic()
        every = self.policy.checkpoint_seconds
        for batch in self.scanner.scan(spec, location, uuid, tasks):
            self.progress("bytes", done=self.scanner.bytes_read - self._copy_start)
            if not batch:
                continue
            for result in batch:
                into[result.path] = result
            pending.extend(batch)
            if run_id and (not every or time.monotonic() - last >= every):
                self._checkpoint(run_id, uuid, spec.name, pending)
                pending, last = [], time.monotonic()
        if run_id and pending:
            self._checkpoint(run_id, uuid, spec.name, pending)

    def _checkpoint(self, run_id: str, uuid: str, location: str, batch: list[FileResult]) -> None:
        with self.catalogue.session() as s:
            s.add(AuditProgress(run_id=run_id, aip_uuid=uuid, location=location, at=utcnow(),
                                results=[r.to_row() for r in batch]))
        self._checkpoints += 1
        crash_point(self._checkpoints)

    def _checkpointed(self, run_id: str, uuid: str, location: str) -> dict[str, FileResult]:
        with self.catalogue.session() as s:
            rows = s.scalars(select(AuditProgress.results).where(
                AuditProgress.run_id == run_id, AuditProgress.aip_uuid == uuid,
                AuditProgress.location == location)).all()
        return {r.path: r for batch in rows for r in map(FileResult.from_row, batch)
                if r.error is None}

    # -- the Storage-Service API ------------------------------------------------------------
    def check_aip(self, uuid: str, *, force: bool = False, actor: str = "api") -> tuple[
            list[CheckOutcome], bool]:
        """Full check of every copy of an AIP, for the Storage-Service ``check_fixity``.

        An AIP larger than the policy's ``api_max_full_bytes`` is answered with the latest
        completed full checks when every copy has one within its interval, unless ``force``.

        Returns:
            (one outcome per copy, whether they were taken from earlier audits).
        """
        aip = self.catalogue.get_aip(uuid)
        copies = self.catalogue.copies_of(aip.uuid)
        if not copies:
            raise NotFoundError(f"AIP {aip.uuid} has no copies")
        if not force and aip.size > self.policy.api_max_full_bytes:
            earlier = self._recent_full_checks(aip.uuid, [c.location for c in copies])
            if earlier is not None:
                return earlier, True
        return [self.check_copy(aip.uuid, c.location, "full", purpose="api", actor=actor)
                for c in copies], False

    def _recent_full_checks(self, uuid: str, names: list[str]) -> list[CheckOutcome] | None:
        with self.catalogue.session() as s:
            latest = last_full_checks(s)
        now = utcnow()
        found = []
        for name in names:
            row = latest.get((uuid, name))
            if row is None or (now - as_utc(row.finished_at)).days >= self.policy.interval_for(name):
                return None
            found.append(CheckOutcome.from_row(row))
        return found


def list_copy(location: Location, uuid: str) -> dict[str, ObjectInfo]:
    """What a copy holds (path -> ObjectInfo); empty when the copy is not there."""
    try:
        return {info.path: info for info in location.list_files(uuid)}
    except ObjectNotFound:
        return {}


def survey_copy(location: Location, uuid: str, tags: dict[str, ExpectedFile]) -> tuple[
        dict[str, ObjectInfo], tuple[Manifests, dict[str, FileResult]]]:
    """A copy's listing, and its tag files read and parsed (``tags``: the catalogue's tag
    files of the AIP)."""
    listing = list_copy(location, uuid)
    return listing, read_tag_files(location, uuid, listing, tags)


def survey_in_worker(spec: Any, uuid: str, tags: dict[str, ExpectedFile]) -> tuple[
        dict[str, ObjectInfo], tuple[Manifests, dict[str, FileResult]]]:
    """:func:`survey_copy` in a worker process of the scanner (its own connection)."""
    return survey_copy(worker_location(spec), uuid, tags)


def read_tag_files(location: Location, uuid: str, listing: dict[str, ObjectInfo],
                   expected: dict[str, ExpectedFile]) -> tuple[Manifests, dict[str, FileResult]]:
    """Hash the copy's tag files and parse its manifests, in one read of each.

    Tag files are a few KB; they are read again when an interrupted check resumes,
    because the manifests' entries are compared with every payload file.
    """
    manifests = Manifests({}, {})
    results: dict[str, FileResult] = {}
    for path in sorted(p for p in listing if is_tag_file(p)):
        kind = manifest_algorithm(path)
        if path not in expected and kind is None and path not in ("bagit.txt", "bag-info.txt"):
            continue            # an unknown top-level file: untracked, not read
        algorithms = tuple(sorted(set(expected[path].digests) & AVAILABLE)) \
            if path in expected else ("sha256",)
        try:
            with location.open(uuid, path) as stream:
                size, digests, content = _read_small(stream, algorithms or ("sha256",))
        except (StorageError, OSError) as exc:
            results[path] = FileResult(path, -1, {}, f"{type(exc).__name__}: {exc}")
            continue
        results[path] = FileResult(path, size, digests)
        if kind is not None and content is not None:
            entries = parse_manifest(content.decode("utf-8", errors="replace"))
            (manifests.tag if kind[0] == "tag" else manifests.payload)[kind[1]] = entries
    return manifests, results


def _recorded(want: ExpectedFile) -> tuple[str, ...]:
    """The algorithms the catalogue recorded for a file that hashlib has, sha256 first."""
    return _usable(tuple(want.digests))


@functools.lru_cache(maxsize=64)
def _usable(names: tuple[str, ...]) -> tuple[str, ...]:
    # called for every file of an AIP, with a handful of distinct name tuples
    return tuple(sorted(set(names) & AVAILABLE or {"sha256"}, key=lambda n: (n != "sha256", n)))


def _read_small(stream: Any, algorithms: tuple[str, ...]) -> tuple[int, dict[str, str],
                                                                   bytes | None]:
    """Hash a tag file and keep its bytes (unless it is larger than ``TAG_FILE_MAX``)."""
    hashers = {name: hashlib.new(name) for name in algorithms}
    parts: list[bytes] | None = []
    size = 0
    while chunk := stream.read(1 << 20):
        size += len(chunk)
        for hasher in hashers.values():
            hasher.update(chunk)
        if parts is not None and size <= TAG_FILE_MAX:
            parts.append(chunk)
        else:
            parts = None
    content = b"".join(parts) if parts is not None else None
    return size, {n: h.hexdigest() for n, h in hashers.items()}, content
