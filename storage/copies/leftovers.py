"""What interrupted work left behind, who still claims it, and cleaning it up.

A killed ingest leaves nothing visible, but it can leave bytes: a complete copy published at
one location and never catalogued, a half-written one under ``.pending`` (or objects without
a publication marker on S3), its staging run folder, and its ``in-progress`` transfer row. A
re-run of the same transfer finishes the job and adopts the complete copies; a transfer that
is never re-run would keep them forever. :func:`find_remnants` lists all of it with its size,
age and claim; :func:`clean` removes what nothing claims:

- never what a running ingest holds (its staging run lock, its transfer's fingerprint lock —
  a lock file on this machine and, on PostgreSQL, an advisory lock for other machines), and
  never anything younger than ``older_than`` (a replication or repair in progress writes
  ``.pending`` too, and holds no lock);
- half-written copies, unfinished multipart uploads, interrupted deletions and replacements,
  and free staging run folders: a re-run writes them again anyway;
- a complete but uncatalogued copy planned by an interrupted transfer, and that transfer's
  row, only when told to abandon interrupted transfers (else a re-run adopts the copy); the
  transfer is then marked ``abandoned`` and a re-run starts afresh;
- never a complete copy that no transfer claims: it may be the only record of an AIP whose
  catalogue entry was lost (``dangan rebuild`` catalogues it).

Every removal is one ``storage-clean`` audit-log entry; every abandoned transfer a
``transfer-abandoned`` one.
"""

from __future__ import annotations

import fcntl
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import select

from policies import ConfigError, Settings, StorageError, UsageError, load_storage_policy
from storage.catalogue import models
from storage.catalogue import Catalogue
from storage.copies.words import human_age, human_size
from storage.copies import DEFAULT_OLDER_THAN  # noqa: F401 - the default, kept with the code that uses it
from storage.locations import Leftover, Location, open_location

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_age(text: str) -> float:
    """Seconds from ``90s``, ``30m``, ``12h``, ``7d`` or a plain number of seconds.

    Raises:
        UsageError: anything else.
    """
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text or "")
    if not found:
        raise UsageError(f"not an age: {text!r} (e.g. 90s, 30m, 12h, 7d)")
    return float(found.group(1)) * _UNITS[found.group(2) or "s"]


def transfer_lock_path(settings: Settings, fingerprint: str) -> Path:
    """The lock file an ingest holds on this machine while it ingests a transfer."""
    return settings.staging / "locks" / f"{fingerprint}.lock"


@dataclass
class Remnant:
    """One thing interrupted work left, and who claims it.

    Attributes:
        where: a location's name, ``staging`` or ``catalogue`` (a transfer row).
        kind: ``half-written``, ``multipart``, ``deleting``, ``replacing`` (see
            :class:`storage.locations.Leftover`), ``uncatalogued`` (a complete published
            copy of an AIP the catalogue does not have), ``staging-run`` (an ingest's staging
            folder), ``interrupted-transfer`` (a transfer row left ``in-progress``).
        name, uuid, size, modified: what and where it is, bytes, last written (POSIX time).
        transfer, source: the transfer whose plan names it, and where that came from.
        running: an ingest that runs now holds it.
    """

    where: str
    kind: str
    name: str
    uuid: str | None
    size: int
    modified: float | None
    transfer: str | None = None
    source: str | None = None
    fingerprint: str | None = None
    running: bool = False
    leftover: Leftover | None = field(default=None, repr=False)

    @property
    def problem(self) -> bool:
        """Whether it needs someone's attention: nothing running holds it."""
        return not self.running

    def age(self, now: float | None = None) -> float | None:
        """Seconds since it was last written."""
        if self.modified is None:
            return None
        now = now if now is not None else datetime.now(timezone.utc).timestamp()
        return max(0.0, now - self.modified)

    def describe(self) -> str:
        """One line for people."""
        age = self.age()
        claim = (" — in use by a running ingest" if self.running else
                 f" — of interrupted transfer {self.transfer} ({self.source})"
                 if self.transfer else "")
        return (f"{self.where}: {self.kind} {self.name}, {human_size(self.size)}, "
                f"{human_age(age)} old{claim}")

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {"where": self.where, "kind": self.kind, "name": self.name, "uuid": self.uuid,
                "bytes": self.size, "age_seconds": None if self.age() is None
                else round(self.age() or 0), "modified": None if self.modified is None else
                datetime.fromtimestamp(self.modified, timezone.utc).isoformat(timespec="seconds"),
                "transfer": self.transfer, "source": self.source, "running": self.running,
                "problem": self.problem}


@dataclass
class RemnantReport:
    """What :func:`find_remnants` found, and the locations it could not look at."""

    remnants: list[Remnant] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def problems(self) -> list[Remnant]:
        return [r for r in self.remnants if r.problem]

    def to_dict(self) -> dict[str, Any]:
        return {"remnants": [r.to_dict() for r in self.remnants], "errors": self.errors}


def find_remnants(settings: Settings, catalogue: Catalogue) -> RemnantReport:
    """Everything interrupted work left in the policy's locations, staging and the catalogue."""
    report = RemnantReport()
    claims = _claims(settings, catalogue)
    with catalogue.session() as s:
        catalogued = set(s.scalars(select(models.Aip.uuid)))
    for spec in load_storage_policy(settings).locations:
        try:
            location = open_location(spec, settings=settings)
            report.remnants += _at_location(location, catalogued, claims)
        except (StorageError, ConfigError) as exc:
            report.errors[spec.name] = str(exc)
    report.remnants += _staging_runs(settings)
    for transfer in claims.values():
        if transfer.row.status == "in-progress" and not transfer.running:
            report.remnants.append(Remnant(
                "catalogue", "interrupted-transfer", transfer.row.id, None, 0,
                _aware(transfer.row.received_at).timestamp(), transfer.row.id,
                transfer.row.source, transfer.row.fingerprint))
    return report


@dataclass
class _Claim:
    row: models.Transfer
    running: bool


def _claims(settings: Settings, catalogue: Catalogue) -> dict[str, _Claim]:
    """Transfer id -> its claim, for the transfers left in progress (or abandoned)."""
    with catalogue.session() as s:
        rows = list(s.scalars(select(models.Transfer).where(
            models.Transfer.status.in_(("in-progress", "abandoned")))))
    return {row.id: _Claim(row, row.status == "in-progress"
                           and transfer_running(settings, catalogue, row.fingerprint))
            for row in rows}


def _planned(claims: dict[str, _Claim]) -> dict[str, _Claim]:
    return {uuid: claim for claim in claims.values() for uuid in (claim.row.plan or {}).values()}


def _at_location(location: Location, catalogued: set[str],
                 claims: dict[str, _Claim]) -> list[Remnant]:
    planned = _planned(claims)
    found = [_remnant(location.name, leftover.kind, leftover.name, leftover.uuid,
                      leftover.size, leftover.modified, planned, leftover)
             for leftover in location.leftovers()]
    for uuid in location.list_aips():
        if uuid in catalogued:
            continue
        files = list(location.list_files(uuid))
        found.append(_remnant(location.name, "uncatalogued", f"{uuid}/", uuid,
                              sum(f.size for f in files),
                              max((f.modified for f in files if f.modified), default=None),
                              planned, None))
    return found


def _remnant(where: str, kind: str, name: str, uuid: str | None, size: int,
             modified: float | None, planned: dict[str, _Claim],
             leftover: Leftover | None) -> Remnant:
    claim = planned.get(uuid or "")
    return Remnant(where, kind, name, uuid, size, modified,
                   claim.row.id if claim else None, claim.row.source if claim else None,
                   claim.row.fingerprint if claim else None,
                   bool(claim and claim.running), leftover)


def _staging_runs(settings: Settings) -> list[Remnant]:
    from storage.locations import tree_size

    staging = settings.staging
    if not staging.is_dir():
        return []
    found = []
    for folder in sorted(staging.glob("run-*")):
        if not folder.is_dir() or folder.is_symlink():
            continue
        with _try_lock(folder.with_name(f"{folder.name}.lock")) as free:
            size, modified = tree_size(folder)
            found.append(Remnant("staging", "staging-run", folder.name, None, size, modified,
                                 running=not free))
    return found


def transfer_running(settings: Settings, catalogue: Catalogue, fingerprint: str) -> bool:
    """Whether an ingest of this transfer runs now (here, or on PostgreSQL anywhere)."""
    with _transfer_locks(settings, catalogue, fingerprint) as free:
        return not free


@contextmanager
def _transfer_locks(settings: Settings, catalogue: Catalogue,
                    fingerprint: str) -> Iterator[bool]:
    """Hold both locks of a transfer if both are free; yield whether they were taken."""
    with _try_lock(transfer_lock_path(settings, fingerprint)) as free:
        if not free:
            yield False
            return
        with catalogue.try_transfer_lock(fingerprint) as taken:
            yield taken


@contextmanager
def _try_lock(path: Path) -> Iterator[bool]:
    """Take an ingest's lock file without waiting; yield whether it was free (a missing
    file is free: whoever held it is gone)."""
    if not path.exists():
        yield True
        return
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# -- cleaning ---------------------------------------------------------------------------------

@dataclass
class Outcome:
    """What :func:`clean` did with one remnant: ``removed`` (or ``would-remove``), or
    ``kept`` with the reason."""

    remnant: Remnant
    action: str
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {**self.remnant.to_dict(), "action": self.action, "reason": self.reason}


@dataclass
class CleanReport:
    """The result of :func:`clean`."""

    outcomes: list[Outcome] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    dry_run: bool = False

    @property
    def removed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.action in ("removed", "would-remove")]

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.action == "failed"]

    def to_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "outcomes": [o.to_dict() for o in self.outcomes],
                "removed": len(self.removed), "removed_bytes": sum(
                    o.remnant.size for o in self.removed),
                "kept": len(self.outcomes) - len(self.removed) - len(self.failed),
                "failed": len(self.failed), "errors": self.errors}


def clean(settings: Settings, catalogue: Catalogue, *, older_than: float,
          abandon: bool = False, dry_run: bool = False, actor: str = "dangan") -> CleanReport:
    """Remove what interrupted work left and nothing claims (see the module's rules).

    Arguments:
        older_than: seconds; anything written more recently is kept.
        abandon: also remove the complete copies of interrupted transfers and mark those
            transfers abandoned (a re-run then starts afresh).
        dry_run: only say what would be removed.
    """
    found = find_remnants(settings, catalogue)
    report = CleanReport(errors=found.errors, dry_run=dry_run)
    now = datetime.now(timezone.utc).timestamp()
    locations: dict[str, Location] = {}
    # a transfer row goes last: its copies first, so that an abandoned row claims nothing
    for remnant in sorted(found.remnants, key=lambda r: r.kind == "interrupted-transfer"):
        reason = _keep_reason(remnant, now, older_than, abandon)
        if reason:
            report.outcomes.append(Outcome(remnant, "kept", reason))
            continue
        if dry_run:
            report.outcomes.append(Outcome(remnant, "would-remove"))
            continue
        report.outcomes.append(_remove(settings, catalogue, remnant, locations, report,
                                       actor))
    removed = [o.remnant.to_dict() for o in report.outcomes if o.action == "removed"]
    if removed:
        catalogue.audit(actor, "storage-clean", "leftovers", {
            "removed": [{k: r[k] for k in ("where", "kind", "name", "bytes", "transfer")}
                        for r in removed], "older_than_seconds": older_than,
            "abandon": abandon})
    return report


def _keep_reason(remnant: Remnant, now: float, older_than: float, abandon: bool) -> str:
    if remnant.running:
        return "in use by a running ingest"
    age = remnant.age(now)
    if age is not None and age < older_than:
        return f"written {human_age(age)} ago, younger than {human_age(older_than)}"
    if remnant.kind == "uncatalogued" and remnant.transfer is None:
        return (f"a complete copy no transfer claims: it may be the only record of an AIP "
                f"whose catalogue entry was lost (dangan rebuild --from {remnant.where})")
    if remnant.kind in ("uncatalogued", "interrupted-transfer") and not abandon:
        return (f"a re-run of `dangan ingest {remnant.source}` adopts it and finishes the "
                "transfer; --abandon-interrupted removes it")
    return ""


def _remove(settings: Settings, catalogue: Catalogue, remnant: Remnant,
            locations: dict[str, Location], report: CleanReport, actor: str) -> Outcome:
    """Remove one remnant, holding its transfer's locks so that no re-run starts meanwhile."""
    try:
        if remnant.fingerprint is None:
            _discard(settings, catalogue, remnant, locations, actor)
            return Outcome(remnant, "removed")
        with _transfer_locks(settings, catalogue, remnant.fingerprint) as free:
            if not free:
                return Outcome(remnant, "kept", "in use by an ingest that started meanwhile")
            _discard(settings, catalogue, remnant, locations, actor)
        return Outcome(remnant, "removed")
    except (StorageError, ConfigError, OSError) as exc:
        return Outcome(remnant, "failed", str(exc))


def _discard(settings: Settings, catalogue: Catalogue, remnant: Remnant,
             locations: dict[str, Location], actor: str) -> None:
    if remnant.kind == "staging-run":
        folder = settings.staging / remnant.name
        with _try_lock(folder.with_name(f"{folder.name}.lock")) as free:
            if not free:
                raise StorageError(f"{folder}: an ingest took it meanwhile")
            shutil.rmtree(folder)
            folder.with_name(f"{folder.name}.lock").unlink(missing_ok=True)
        return
    if remnant.kind == "interrupted-transfer":
        _abandon(catalogue, remnant, actor)
        return
    location = locations.get(remnant.where)
    if location is None:
        spec = load_storage_policy(settings).location(remnant.where)
        location = locations[remnant.where] = open_location(spec, settings=settings)
    if remnant.kind == "uncatalogued":
        with catalogue.session() as s:
            if s.get(models.Aip, remnant.uuid) is not None:
                raise StorageError(f"AIP {remnant.uuid} was catalogued meanwhile")
        location.delete_aip(remnant.uuid or "")
    elif remnant.leftover is not None:
        location.discard_leftover(remnant.leftover)


def _abandon(catalogue: Catalogue, remnant: Remnant, actor: str) -> None:
    with catalogue.session() as s:
        row = s.get(models.Transfer, remnant.name)
        if row is None or row.status != "in-progress":
            return
        row.status, row.finished_at = "abandoned", datetime.now(timezone.utc)
        catalogue.append_audit(s, actor, "transfer-abandoned", row.id,
                               {"source": row.source, "planned": sorted((row.plan or {}).values())})


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
