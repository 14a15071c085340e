"""Copies by policy: write every required copy, see where copies are, bring them up to policy.

The storage policy names the locations and, per class of record, which of them must hold a
verified copy (``copies: {default: [local, s3a], Y: [local, s3a, offsite]}``). The class of an
AIP is its 保管期限 code when the policy lists it, else ``default``.

- :func:`write_copies` (used by ingest) writes a new AIP to each required location, retries a
  failed copy with back-off, reports every failed attempt, and raises :class:`CopyFailed` if
  any copy is still missing: the AIP is then not catalogued, so it never becomes UPLOADED.
- :func:`storage_status` counts, per location, the AIPs, bytes, unverified and missing copies,
  checking presence and sizes in storage (listings only, no bytes read).
- :class:`Replicator` brings a new or lagging location up to policy (``dangan replicate``),
  moves copies between locations with verification before anything is deleted (``dangan
  storage migrate``) and deletes AIPs whose retention allows it (``dangan delete``).

Every copy written is read back in full by the location before it counts; every copy made,
restored, moved or deleted is a PREMIS event and an audit-log entry.
"""

from __future__ import annotations

import re
import shutil
import time
import uuid as uuidlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select

from policies import (
    ConfigError,
    FixityError,
    ObjectLocked,
    ObjectNotFound,
    Settings,
    StorageError,
    UsageError,
    load_storage_policy,
)
from policies.loader import StoragePolicy
from storage.catalogue import models
from storage.catalogue import Catalogue, utcnow
from storage.aip import digest_stream, read_chunks
from storage.locations import (
    CopyReport,
    ExpectedFile,
    Location,
    Mismatch,
    RetentionLock,
    open_location,
    read_manifest,
)
from storage.index import unindex_aip
from storage.copies.worm import (
    AppliedLock,
    WormSettings,
    apply_lock,
    forget_lock,
    guard_deletion,
    lock_for_aip,
    record_locks,
)

FailureFn = Callable[[str, int, str], None]     # location, attempt, message
MANIFEST = re.compile(r"^(?:tag)?manifest-(\w+)\.txt$")
INTACT = ("ok", "copied", "restored", "verified")


class CopyFailed(StorageError):
    """One or more required copies could not be written and verified (after retries)."""

    exit_code = 1

    def __init__(self, uuid: str, failures: Mapping[str, str]) -> None:
        listed = "; ".join(f"{name}: {message}" for name, message in failures.items())
        super().__init__(f"AIP {uuid}: required copies failed: {listed}")
        self.uuid, self.failures = uuid, dict(failures)


# --------------------------------------------------------------------------- locations


class LocationSet:
    """The locations of a storage policy, each opened once.

    Arguments:
        policy: the storage policy.
        settings: passed to :func:`open_location` (S3 defaults, fsync).
    """

    def __init__(self, policy: StoragePolicy, settings: Settings) -> None:
        self.policy, self.settings = policy, settings
        self._open: dict[str, Location] = {}

    def get(self, name: str) -> Location:
        """The location called ``name`` (ConfigError if the policy has none)."""
        if name not in self._open:
            self._open[name] = open_location(
                self.policy.location(name), fsync=bool(self.settings.get("storage", "fsync")),
                settings=self.settings)
        return self._open[name]

    def for_class(self, record_class: str = "default") -> list[Location]:
        """The locations a record of this class must have a verified copy at."""
        return [self.get(name) for name in self.policy.required(record_class)]


def record_class(period: str | None, policy: StoragePolicy) -> str:
    """The storage class of a record: its 保管期限 code when the policy lists it."""
    return period if period and period in policy.copies else "default"


# --------------------------------------------------------------------------- writing


@dataclass
class WrittenCopies:
    """The result of :func:`write_copies`.

    Attributes:
        copies: one report per location, in policy order.
        locks: the retention locks applied (one per location, when there is a lock).
        adopted: the location whose copy, published by an interrupted earlier run, was
            taken as the system of record (its tag files differ from a new build's).
    """

    copies: list[CopyReport]
    locks: list[AppliedLock] = field(default_factory=list)
    adopted: Location | None = None


def write_copies(locations: Sequence[Location], uuid: str, folder: Path,
                 expected: Mapping[str, ExpectedFile], *, scratch: Path,
                 lock: RetentionLock | None = None, attempts: int = 3, backoff: float = 1.0,
                 progress: Callable[[int], None] | None = None,
                 after_each: Callable[[], None] | None = None,
                 on_failure: FailureFn | None = None) -> WrittenCopies:
    """Write a new AIP to every location, verified, locked, retried; all or an error.

    If a location already holds a published copy (an interrupted earlier run), that copy is
    verified and becomes the source of the others, so that every copy is the same bag.

    Arguments:
        locations: where copies are required.
        uuid, folder, expected: the AIP bag built in staging and what each file must be.
        scratch: a folder (created, then removed) for an adopted copy's bytes.
        lock: the retention lock to apply to every copy, or None.
        attempts, backoff: writes per location, and the first pause between them (doubled).
        progress: called with bytes verified.
        after_each: called after each copy is written (fault injection in tests).
        on_failure: called with (location, attempt, message) for every failed attempt.

    Raises:
        CopyFailed: a copy is still not written after ``attempts`` tries (the others are).
    """
    source, wanted, adopted = folder, expected, None
    published = next((loc for loc in locations if _published_at(loc, uuid)), None)
    try:
        reports: dict[str, CopyReport] = {}
        if published is not None:
            # verifies the copy found in place against its own manifests and our payload
            reports[published.name] = published.put_aip(uuid, folder, expected)
            wanted = expected_of_copy(published, uuid)
            fetch_copy(published, uuid, scratch, wanted)
            source, adopted = scratch, published
        copies, locks, failures = [], [], {}
        for index, location in enumerate(locations):
            move = index == len(locations) - 1
            try:
                report = reports.get(location.name) or _write_one(
                    location, uuid, source, wanted, move, attempts, backoff, progress,
                    on_failure)
                applied = apply_lock(location, uuid, lock)
            except (StorageError, ConfigError, OSError) as exc:
                failures[location.name] = str(exc)
                continue
            copies.append(report)
            if applied is not None:
                locks.append(applied)
            if after_each:
                after_each()
        if failures:
            raise CopyFailed(uuid, failures)
        return WrittenCopies(copies, locks, adopted)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _published_at(location: Location, uuid: str) -> bool:
    """Whether a copy is published there; an unreachable location counts as no (writing
    to it will then fail, be retried and reported)."""
    try:
        return location.has_aip(uuid)
    except (StorageError, ConfigError):
        return False


def _write_one(location: Location, uuid: str, source: Path, expected: Mapping[str, ExpectedFile],
               move: bool, attempts: int, backoff: float, progress: Callable[[int], None] | None,
               on_failure: FailureFn | None) -> CopyReport:
    for attempt in range(1, attempts + 1):
        try:
            report = location.put_aip(uuid, source, expected, move=move and attempt == 1,
                                      progress=progress)
        except (ObjectLocked, ConfigError) as exc:
            if on_failure:      # not worth retrying, but reported all the same
                on_failure(location.name, attempt, str(exc))
            raise
        except (StorageError, OSError) as exc:
            message = f"attempt {attempt} of {attempts}: {exc}"
            if on_failure:
                on_failure(location.name, attempt, str(exc))
            if attempt == attempts:
                raise StorageError(message) from exc
            time.sleep(backoff * 2 ** (attempt - 1))
            continue
        if attempt > 1:
            report.notes.append(f"written at attempt {attempt} of {attempts}")
        return report
    raise AssertionError("unreachable")


def expected_of_copy(location: Location, uuid: str) -> dict[str, ExpectedFile]:
    """What each file of a stored copy must be, from its own manifests and listing.

    Files no manifest lists (the tag manifests themselves) are read once for their SHA-256.
    """
    sizes = {info.path: info.size for info in location.list_files(uuid)}
    digests: dict[str, dict[str, str]] = {path: {} for path in sizes}
    for name in sorted(sizes):
        match = MANIFEST.match(name)
        if match and "/" not in name:
            for path, value in read_manifest(location, uuid, name).items():
                digests.setdefault(path, {})[match.group(1)] = value
    for path, found in digests.items():
        if not found and path in sizes:
            with location.open(uuid, path) as stream:
                found.update(digest_stream(read_chunks(stream), ["sha256"])[1])
    missing = sorted(set(digests) - set(sizes))
    if missing:
        raise FixityError(f"AIP {uuid} at {location.name}: manifest lists absent file "
                          f"{missing[0]}", path=missing[0])
    return {path: ExpectedFile(sizes[path], digests[path]) for path in sizes}


def fetch_copy(location: Location, uuid: str, target: Path,
               expected: Mapping[str, ExpectedFile], workers: int = 4) -> None:
    """Download a copy into ``target``, checking every file against ``expected``.

    Raises:
        FixityError: a file is absent or differs (``target`` is then incomplete).
    """
    root = target.resolve()

    def fetch(path: str) -> None:
        want = expected[path]
        dest = (root / path).resolve()
        if root not in dest.parents:
            raise FixityError(f"AIP {uuid}: unsafe path {path!r}", path=path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with location.open(uuid, path) as stream, open(dest, "wb") as out:
            size, got = digest_stream(read_chunks(stream), list(want.digests) or ["sha256"],
                                      expected_size=want.size, write=out.write)
        if size != want.size:
            raise FixityError(f"{location.url_for(uuid, path)}: {size} bytes, expected "
                              f"{want.size}", path=path, expected=str(want.size), actual=str(size))
        for algorithm, value in want.digests.items():
            if got[algorithm] != value:
                raise FixityError(f"{location.url_for(uuid, path)}: {algorithm} differs",
                                  path=path, algorithm=algorithm, expected=value,
                                  actual=got[algorithm])

    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(fetch, sorted(expected)))


# --------------------------------------------------------------------------- checking


@dataclass
class CopyState:
    """What a listing shows of one copy: present (published) and its problems."""

    present: bool
    problems: list[Mismatch] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return self.present and not self.problems

    def describe(self) -> str:
        if not self.present:
            return "absent"
        kinds: dict[str, list[str]] = {}
        for problem in self.problems:
            kinds.setdefault(problem.kind, []).append(problem.path)
        return "; ".join(f"{len(paths)} {kind} ({paths[0]}{', …' if len(paths) > 1 else ''})"
                         for kind, paths in sorted(kinds.items())) or "intact"


def quick_check(location: Location, uuid: str, sizes: Mapping[str, int]) -> CopyState:
    """Presence and size of every file of a copy, from a listing (no bytes are read)."""
    if not location.has_aip(uuid):
        return CopyState(False)
    try:
        stored = {info.path: info.size for info in location.list_files(uuid)}
    except ObjectNotFound:
        return CopyState(False)
    problems = [Mismatch("missing", p) for p in sorted(set(sizes) - set(stored))]
    problems += [Mismatch("size", p, "", str(sizes[p]), str(stored[p]))
                 for p in sorted(set(sizes) & set(stored)) if sizes[p] != stored[p]]
    problems += [Mismatch("untracked", p) for p in sorted(set(stored) - set(sizes))]
    return CopyState(True, problems)


def expected_of_aip(catalogue: Catalogue, uuid: str) -> dict[str, ExpectedFile]:
    """Every bag file of a catalogued AIP with its size and digests (the catalogue's)."""
    return {row.path: ExpectedFile(row.size, dict(row.digests) or {"sha256": row.sha256})
            for row in catalogue.files_of(uuid)}


@dataclass
class LocationStatus:
    """One line of ``dangan storage status``.

    Attributes:
        name, url: the location.
        classes: record classes whose policy requires a copy here.
        aips, bytes: verified copies recorded here, and their bytes.
        unverified: copies recorded here whose status is not ``verified``.
        missing: AIPs the policy requires here without an intact copy: none recorded, or
            the listing shows it absent or incomplete.
        locked: copies here under a retention lock in force (server- or Dangan-enforced).
        problems: one line per copy found absent or incomplete.
        error: the location could not be listed (then nothing was checked).
    """

    name: str
    url: str
    classes: list[str] = field(default_factory=list)
    aips: int = 0
    bytes: int = 0
    unverified: int = 0
    missing: int = 0
    locked: int = 0
    problems: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def healthy(self) -> bool:
        return not (self.unverified or self.missing or self.error)

    def to_dict(self) -> dict:
        return asdict(self)


def storage_status(settings: Settings, catalogue: Catalogue, *,
                   check: bool = True) -> list[LocationStatus]:
    """Per location of the policy: AIPs, bytes, unverified and missing copies.

    Arguments:
        check: also list each copy in storage (presence and sizes); otherwise the
            catalogue's view alone.
    """
    from storage.copies.worm import RetentionLockRecord

    policy = load_storage_policy(settings)
    locations = LocationSet(policy, settings)
    aips = catalogue.list_aips()
    with catalogue.session() as s:
        copies = list(s.scalars(select(models.Copy)))
        locks = list(s.scalars(select(RetentionLockRecord)))
    sizes = {aip.uuid: {f.path: f.size for f in catalogue.files_of(aip.uuid)} for aip in aips} \
        if check else {}
    now = datetime.now(timezone.utc)
    result = []
    for spec in policy.locations:
        status = LocationStatus(spec.name, spec.url, sorted(
            c for c, names in policy.copies.items() if spec.name in names))
        here = {c.aip_uuid: c for c in copies if c.location == spec.name}
        status.aips = sum(1 for c in here.values() if c.status == "verified")
        status.bytes = sum(c.bytes for c in here.values() if c.status == "verified")
        status.unverified = sum(1 for c in here.values() if c.status != "verified")
        status.locked = sum(1 for row in locks
                            if row.location == spec.name and row.lock().in_force(now))
        location = None
        if check:
            try:
                location = locations.get(spec.name)
            except (StorageError, ConfigError) as exc:
                status.error = str(exc)
        for aip in aips:
            required = spec.name in policy.required(record_class(aip.retention_period, policy))
            copy = here.get(aip.uuid)
            intact = copy is not None and copy.status == "verified"
            if location is not None and status.error is None and (copy is not None or required):
                try:
                    state = quick_check(location, aip.uuid, sizes[aip.uuid])
                except StorageError as exc:
                    status.error = str(exc)
                else:
                    if not state.intact and copy is not None:
                        status.problems.append(f"{aip.uuid}: {state.describe()}")
                    intact = intact and state.intact
            if required and not intact:
                status.missing += 1
        result.append(status)
    return result


# --------------------------------------------------------------------------- replication


@dataclass
class CopyAction:
    """What was done (or would be) about one copy.

    ``action``: ok | planned | copied | restored | verified | deleted | kept | failed.
    """

    aip: str
    location: str
    action: str
    detail: str = ""
    source: str | None = None
    bytes: int = 0


@dataclass
class ReplicationReport:
    """The actions of one ``replicate``, ``migrate`` or ``delete``."""

    actions: list[CopyAction] = field(default_factory=list)

    @property
    def failed(self) -> list[CopyAction]:
        return [a for a in self.actions if a.action == "failed"]

    def to_dict(self) -> dict:
        counts: dict[str, int] = {}
        for action in self.actions:
            counts[action.action] = counts.get(action.action, 0) + 1
        return {"counts": counts, "actions": [asdict(a) for a in self.actions]}


class Replicator:
    """Keeps copies where the storage policy wants them.

    Arguments:
        settings: the home's settings (policy, WORM and retry configuration).
        catalogue: the catalogue whose copies are read and recorded.
        actor: who is recorded in the audit log.
        progress: called with each :class:`CopyAction` as it is decided.
    """

    def __init__(self, settings: Settings, catalogue: Catalogue, *, actor: str = "dangan",
                 progress: Callable[[CopyAction], None] | None = None) -> None:
        self.settings, self.catalogue, self.actor = settings, catalogue, actor
        self.policy = load_storage_policy(settings)
        self.locations = LocationSet(self.policy, settings)
        for spec in self.policy.locations:     # a misconfigured location stops us before work
            self.locations.get(spec.name)
        self.worm = WormSettings.from_settings(settings)
        self.attempts = settings.int("storage", "copy_attempts")
        self.backoff = 1.0
        self.progress = progress or (lambda action: None)
        self.scratch = settings.staging / "replicate"

    # -- public operations ---------------------------------------------------------------------
    def replicate(self, locations: Iterable[str] = (), aips: Iterable[str] = (), *,
                  dry_run: bool = False) -> ReplicationReport:
        """Give every UPLOADED AIP a verified copy at each location its class requires.

        Arguments:
            locations: only these locations (default: all the policy names).
            aips: only these AIPs (default: all).
            dry_run: report what would be done, change nothing.
        """
        wanted = set(locations)
        for name in wanted:
            self.policy.location(name)
        report = ReplicationReport()
        for aip in self._aips(aips):
            for name in self.policy.required(record_class(aip.retention_period, self.policy)):
                if not wanted or name in wanted:
                    report.actions.append(self._announce(self.ensure_copy(aip, name,
                                                                          dry_run=dry_run)))
        return report

    def migrate(self, source: str, target: str, aips: Iterable[str] = (), *,
                dry_run: bool = False) -> ReplicationReport:
        """Move every copy at ``source`` to ``target``: first all copies are written and
        verified at ``target``, then the source copies that have a verified twin are
        deleted — unless a lock the source enforces refuses it (those are kept)."""
        if source == target:
            raise UsageError("migrate: FROM and TO are the same location")
        self.policy.location(source), self.policy.location(target)
        selected = {a.uuid for a in self._aips(aips)}
        with self.catalogue.session() as s:
            moving = sorted(set(s.scalars(select(models.Copy.aip_uuid).where(
                models.Copy.location == source))) & selected)
        report = ReplicationReport()
        ready = []
        for uuid in moving:
            action = self._announce(self.ensure_copy(self.catalogue.get_aip(uuid), target,
                                                     prefer=source, dry_run=dry_run))
            report.actions.append(action)
            if action.action in INTACT:
                ready.append(uuid)
        if not dry_run:
            for uuid in ready:
                report.actions.append(self._announce(self._remove_copy(uuid, source, target)))
        return report

    def delete(self, uuid: str, reason: str) -> ReplicationReport:
        """Delete an AIP (every copy) whose retention allows it; record the decision.

        Raises:
            ObjectLocked: the AIP is retained (nothing is deleted).
            UsageError: no reason given, or the AIP is not UPLOADED.
        """
        if not reason.strip():
            raise UsageError("delete: a reason (the appraisal decision) is required")
        aip = self.catalogue.get_aip(uuid)
        if aip.status != "UPLOADED":
            raise UsageError(f"AIP {aip.uuid} is {aip.status}, not UPLOADED")
        copies = self.catalogue.copies_of(aip.uuid)
        located = [(c.location, self._open(c.location)) for c in copies]
        with self.catalogue.session() as s:
            guard_deletion(s, aip, [loc for _name, loc in located if loc is not None])
        report = ReplicationReport()
        for name, location in located:
            if location is None:
                report.actions.append(CopyAction(aip.uuid, name, "failed",
                                                 "location not in the storage policy"))
                continue
            try:
                location.delete_aip(aip.uuid)
                detail = "deleted"
            except ObjectNotFound:
                detail = "was already absent"
            except ObjectLocked as exc:
                report.actions.append(self._announce(CopyAction(aip.uuid, name, "kept", str(exc))))
                continue
            report.actions.append(self._announce(CopyAction(aip.uuid, name, "deleted", detail)))
        self._record_deletion(aip.uuid, reason, report)
        return report

    # -- one copy ----------------------------------------------------------------------------
    def ensure_copy(self, aip: models.Aip, target: str, *, prefer: str | None = None,
                    dry_run: bool = False) -> CopyAction:
        """Make sure ``target`` holds an intact, verified, recorded copy of ``aip``."""
        expected = expected_of_aip(self.catalogue, aip.uuid)
        total = sum(e.size for e in expected.values())
        try:
            location = self.locations.get(target)
            state = quick_check(location, aip.uuid, {p: e.size for p, e in expected.items()})
        except (StorageError, ConfigError) as exc:
            return self._failed(aip.uuid, target, f"cannot check: {exc}")
        row = self._copy_row(aip.uuid, target)
        if state.intact and row is not None and row.status == "verified":
            return CopyAction(aip.uuid, target, "ok", bytes=total)
        if dry_run:
            return CopyAction(aip.uuid, target, "planned", state.describe(), bytes=total)
        failure = ""
        for attempt in range(1, self.attempts + 1):
            try:
                action = self._make_copy(aip, location, expected, state, prefer)
                action.bytes = total
                return action
            except (ObjectLocked, ConfigError) as exc:
                failure = str(exc)
                break
            except (StorageError, OSError) as exc:
                failure = f"attempt {attempt} of {self.attempts}: {exc}"
                self._record_event(aip.uuid, target, "fail", "replication", failure)
                if attempt < self.attempts:
                    time.sleep(self.backoff * 2 ** (attempt - 1))
                    state = quick_check(location, aip.uuid,
                                        {p: e.size for p, e in expected.items()})
        return self._failed(aip.uuid, target, failure)

    def _make_copy(self, aip: models.Aip, location: Location,
                   expected: Mapping[str, ExpectedFile], state: CopyState,
                   prefer: str | None) -> CopyAction:
        if state.intact:
            problems = location.verify_aip(aip.uuid, expected, ("sha256",))
            if not problems:
                return self._recorded(aip, location, "verified", None,
                                      "copy in place read back intact")
            state = CopyState(True, problems)
        scratch = self.scratch / f"{aip.uuid}-{uuidlib.uuid4().hex[:8]}"
        try:
            source = self._fetch_from_healthy(aip.uuid, location.name, expected, scratch, prefer)
            if not state.present:
                location.put_aip(aip.uuid, scratch, expected)
                return self._recorded(aip, location, "copied", source, "copy written and "
                                      "read back")
            self._restore(location, aip.uuid, scratch, expected, state)
            return self._recorded(aip, location, "restored", source,
                                  f"restored in place ({state.describe()})")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _fetch_from_healthy(self, uuid: str, exclude: str,
                            expected: Mapping[str, ExpectedFile], scratch: Path,
                            prefer: str | None) -> str:
        """Download a copy that reads back intact from another location; return its name."""
        names = [c.location for c in self.catalogue.copies_of(uuid)
                 if c.status == "verified" and c.location != exclude]
        order = [n for n in self.policy_order(names)]
        if prefer in order:
            order.remove(prefer)
            order.insert(0, prefer)
        failures = []
        for name in order:
            location = self._open(name)
            if location is None:
                continue
            try:
                fetch_copy(location, uuid, scratch, expected)
                return name
            except (StorageError, OSError) as exc:
                failures.append(f"{name}: {exc}")
                self._record_event(uuid, name, "fail", "fixity check",
                                   f"replication source unreadable: {exc}")
        raise StorageError(f"AIP {uuid}: no intact copy to replicate from"
                           + (f" ({'; '.join(failures)})" if failures else ""))

    def _restore(self, location: Location, uuid: str, scratch: Path,
                 expected: Mapping[str, ExpectedFile], state: CopyState) -> None:
        """Mend a published copy: rewrite what is missing or wrong, drop what is extra.

        A backend that cannot replace files in place gets the whole copy rewritten from the
        verified bytes instead — unless the copy is locked, which only an in-place repair
        may touch.
        """
        if type(location).put_file is Location.put_file:
            lock = location.get_retention(uuid)
            if lock is not None and lock.in_force():
                raise ObjectLocked(f"{location.url_for(uuid)}: damaged but locked "
                                   f"({lock.describe()}) and files cannot be replaced in place")
            location.delete_aip(uuid)
            location.put_aip(uuid, scratch, expected)
            return
        for problem in state.problems:
            if problem.kind == "untracked":
                location.delete_file(uuid, problem.path)
            else:
                location.put_file(uuid, problem.path, scratch / problem.path,
                                  expected[problem.path])
        problems = location.verify_aip(uuid, expected, ("sha256",))
        if problems:
            raise FixityError(f"{location.url_for(uuid)}: still {problems[0].kind} "
                              f"{problems[0].path} after restoring", path=problems[0].path)

    def _remove_copy(self, uuid: str, source: str, target: str) -> CopyAction:
        location = self._open(source)
        if location is None:
            return self._failed(uuid, source, "location not in the storage policy")
        try:
            lock = location.get_retention(uuid) if location.has_aip(uuid) else None
            if lock is not None and lock.in_force():
                return CopyAction(uuid, source, "kept",
                                  f"the copy is locked by the server ({lock.describe()})")
            location.delete_aip(uuid)
            detail = f"deleted after a verified copy was made at {target}"
        except ObjectNotFound:
            detail = "was already absent"
        except ObjectLocked as exc:
            return CopyAction(uuid, source, "kept", str(exc))
        except StorageError as exc:
            return self._failed(uuid, source, f"delete failed: {exc}")
        with self.catalogue.session() as s:
            for row in s.scalars(select(models.Copy).where(models.Copy.aip_uuid == uuid,
                                                           models.Copy.location == source)):
                s.delete(row)
            forget_lock(s, uuid, source)
            self._event(s, uuid, source, "pass", "deletion",
                        f"copy at {source} removed: migrated to {target}")
            self.catalogue.append_audit(s, self.actor, "migrate", uuid,
                                        {"from": source, "to": target})
        return CopyAction(uuid, source, "deleted", detail)

    # -- catalogue -------------------------------------------------------------------------------
    def _recorded(self, aip: models.Aip, location: Location, action: str, source: str | None,
                  detail: str) -> CopyAction:
        applied = apply_lock(location, aip.uuid, lock_for_aip(aip, self.worm))
        size = aip.size
        with self.catalogue.session() as s:
            row = s.scalars(select(models.Copy).where(
                models.Copy.aip_uuid == aip.uuid, models.Copy.location == location.name)).first()
            if row is None:
                row = models.Copy(aip_uuid=aip.uuid, location=location.name)
                s.add(row)
            row.url, row.status, row.verified_at, row.bytes = (
                location.url_for(aip.uuid), "verified", utcnow(), size)
            record_locks(s, aip.uuid, [applied])
            note = f"{detail}" + (f" from {source}" if source else "")
            if applied is not None:
                note += f"; locked: {applied.lock.describe()} ({applied.enforced_by})"
            self._event(s, aip.uuid, location.name, "pass", "replication", note)
            self.catalogue.append_audit(s, self.actor, "replicate", aip.uuid,
                                        {"location": location.name, "action": action,
                                         "source": source})
        return CopyAction(aip.uuid, location.name, action, note, source)

    def _record_deletion(self, uuid: str, reason: str, report: ReplicationReport) -> None:
        gone = {a.location for a in report.actions if a.action == "deleted"}
        kept = [a for a in report.actions if a.action != "deleted"]
        with self.catalogue.session() as s:
            for row in s.scalars(select(models.Copy).where(models.Copy.aip_uuid == uuid)):
                if row.location in gone:
                    s.delete(row)
                    forget_lock(s, uuid, row.location)
            if not kept:
                s.get(models.Aip, uuid).status = "DELETED"
                self._unindex(s, uuid)
            self._event(s, uuid, None, "fail" if kept else "pass", "deletion",
                        f"reason: {reason}; copies removed: {', '.join(sorted(gone)) or 'none'}"
                        + (f"; kept: {', '.join(a.location for a in kept)}" if kept else ""))
            self.catalogue.append_audit(s, self.actor, "delete", uuid,
                                        {"reason": reason, "removed": sorted(gone),
                                         "kept": [a.location for a in kept]})

    def _unindex(self, s, uuid: str) -> None:
        """A deleted AIP leaves the search index (its catalogue record stays, DELETED)."""
        unindex_aip(s, uuid, outbox_enabled=bool(self.catalogue.outbox))

    def _record_event(self, uuid: str, location: str | None, outcome: str, kind: str,
                      detail: str) -> None:
        with self.catalogue.session() as s:
            self._event(s, uuid, location, outcome, kind, detail)

    @staticmethod
    def _event(s, uuid: str, location: str | None, outcome: str, kind: str,
               detail: str) -> None:
        s.add(models.Event(id=str(uuidlib.uuid4()), aip_uuid=uuid, type=kind, at=utcnow(),
                           outcome=outcome, detail=detail, outcome_detail="", agents=[],
                           files=[], location=location))

    def _failed(self, uuid: str, location: str, message: str) -> CopyAction:
        self._record_event(uuid, location, "fail", "replication", message)
        self.catalogue.audit(self.actor, "replicate-failed", uuid,
                             {"location": location, "error": message})
        return CopyAction(uuid, location, "failed", message)

    # -- helpers -----------------------------------------------------------------------------
    def _aips(self, uuids: Iterable[str]) -> list[models.Aip]:
        wanted = [self.catalogue.get_aip(u) for u in uuids]
        return wanted or self.catalogue.list_aips()

    def _copy_row(self, uuid: str, location: str) -> models.Copy | None:
        return next((c for c in self.catalogue.copies_of(uuid) if c.location == location), None)

    def _open(self, name: str) -> Location | None:
        try:
            return self.locations.get(name)
        except ConfigError:
            return None

    def policy_order(self, names: Iterable[str]) -> list[str]:
        """Location names in the storage policy's order (unknown names last)."""
        order = {spec.name: index for index, spec in enumerate(self.policy.locations)}
        return sorted(set(names), key=lambda n: (order.get(n, len(order)), n))

    def _announce(self, action: CopyAction) -> CopyAction:
        self.progress(action)
        return action


def record_copy_failure(catalogue: Catalogue, uuid: str, location: str, attempt: int,
                        message: str) -> None:
    """Record one failed attempt to write a copy at ingest (a PREMIS event and the audit
    log), in its own transaction so that it survives whatever happens next."""
    with catalogue.session() as s:
        Replicator._event(s, uuid, location, "fail", "replication",
                          f"copy at {location}, attempt {attempt}: {message}")
        catalogue.append_audit(s, "dangan", "copy-failed", uuid,
                               {"location": location, "attempt": attempt, "error": message})
