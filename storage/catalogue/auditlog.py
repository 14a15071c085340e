"""The tamper-evident audit log: verifying its hash chain, anchoring its head in storage, and
recording policy changes in it.

Every entry's ``hash`` is SHA-256 over the previous entry's hash and the entry itself
(:func:`storage.catalogue.chain_hash`), so editing, deleting, inserting or reordering entries
breaks the chain. Deleting entries from the *end* leaves a consistent chain, so three more
things vouch for the tail:

- the head record (``audit_head``), updated in the transaction of every entry: it names the
  last entry written and counts them;
- the catalogue's own facts (AIPs, transfers, API keys, users, audit runs, repairs, fixity
  checks, anchors written), each of which an entry must account for;
- the anchors: the head (seq, hash) written into every storage location, outside any AIP
  folder, when a command, portal request or job that appended entries ends (entries from
  reading — searches, logins — at most every ``[audit] anchor_interval_seconds``), after every
  audit run and by ``dangan audit-log anchor``. Someone able to rewrite the whole database
  could recompute every hash, the head and the facts; the anchors are out of their reach.
  An anchor that is unreadable, gone (``audit_anchors`` records it was written) or older
  than the one written there is itself a finding.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import DateTime, column, func, inspect, select, table, text

from policies.config import Settings
from policies.errors import ObjectNotFound, StorageError
from policies.loader import DATA, load_storage_policy, policy_path
from storage.catalogue import models as m
from storage.catalogue.database import AUDIT_WRITTEN, GENESIS, Catalogue, chain_hash, utcnow
from storage.catalogue.database import as_utc
from storage.catalogue.journal import ROUTINE_ACTIONS

if TYPE_CHECKING:
    from storage.locations import Location

ANCHOR_NAME = "audit-log-anchor.json"
READ_BATCH = 2000


@dataclass(frozen=True)
class LogProblem:
    """One way the log is not what was written.

    ``kind``: ``edited`` (an entry's content does not match its hash), ``deleted`` (entries
    missing from the sequence), ``broken-link`` (an entry does not follow the one before it:
    inserted, reordered, or the one before was rewritten), ``out-of-order`` (an entry follows
    another entry than the one before it), ``truncated`` / ``rewritten`` (the anchor in
    storage names an entry the database no longer has, or has differently).
    """

    kind: str
    seq: int | None
    message: str


@dataclass
class AnchorState:
    """What one location's anchor says and whether the database agrees."""

    location: str
    status: str          # ok | mismatch | unreadable | missing | none | unavailable
    seq: int | None = None
    hash: str | None = None
    written_at: str | None = None
    message: str = ""


@dataclass
class LogVerification:
    """The result of verifying the audit log."""

    entries: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    problems: list[LogProblem] = field(default_factory=list)
    anchors: list[AnchorState] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        """No problem found in the chain or against any anchor."""
        return not self.problems

    @property
    def anchored(self) -> bool:
        """At least one anchor in storage was compared and agreed."""
        return any(a.status == "ok" for a in self.anchors)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {"intact": self.intact, "anchored": self.anchored, "entries": self.entries,
                "head": {"seq": self.head_seq, "hash": self.head_hash},
                "problems": [asdict(p) for p in self.problems],
                "anchors": [asdict(a) for a in self.anchors]}


def _entries(catalogue: Catalogue, after: int = 0) -> Iterator[m.AuditEntry]:
    """Every entry after ``after`` in sequence order, read in batches (bounded memory)."""
    last = after
    while True:
        with catalogue.session() as s:
            rows = s.scalars(select(m.AuditEntry).where(m.AuditEntry.seq > last)
                             .order_by(m.AuditEntry.seq).limit(READ_BATCH)).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def entry_hash(row: m.AuditEntry) -> str:
    """Recompute an entry's hash from its stored content and stored previous hash."""
    return chain_hash(row.prev_hash, as_utc(row.at), row.actor, row.action, row.object,
                      row.detail or {})


def verify_chain(catalogue: Catalogue, since: tuple[int, str] | None = None) -> LogVerification:
    """Walk the chain and report every entry that is not as written (anchors not read).

    Arguments:
        since: (seq, hash) of an entry already known good (an agreeing anchor): only the
            entries after it are walked.
    """
    result = LogVerification()
    previous_seq, previous_hash = since or (0, GENESIS)
    broken: list[tuple[int, str, int]] = []
    for row in _entries(catalogue, previous_seq):
        result.entries += 1
        if entry_hash(row) != row.hash:
            result.problems.append(LogProblem(
                "edited", row.seq, f"entry {row.seq} ({row.action} {row.object}) does not match "
                "its hash: its content or its hash was changed"))
        if row.seq != previous_seq + 1:
            missing = f"entry {previous_seq + 1} is" if row.seq == previous_seq + 2 else \
                f"entries {previous_seq + 1}-{row.seq - 1} are"
            result.problems.append(LogProblem(
                "deleted", row.seq, f"{missing} missing before entry {row.seq}"))
        elif row.prev_hash != previous_hash:
            broken.append((row.seq, row.prev_hash, previous_seq))
        previous_hash, previous_seq = row.hash, row.seq
    result.head_seq, result.head_hash = previous_seq, previous_hash
    result.problems.extend(_explain_broken_links(catalogue, broken))
    result.problems.sort(key=lambda p: (p.seq or 0, p.kind))
    return result


def _explain_broken_links(catalogue: Catalogue,
                          broken: list[tuple[int, str, int]]) -> list[LogProblem]:
    if not broken:
        return []
    with catalogue.session() as s:
        owners = dict(s.execute(select(m.AuditEntry.hash, m.AuditEntry.seq)
                                .where(m.AuditEntry.hash.in_({b[1] for b in broken}))).all())
    problems = []
    for seq, prev_hash, previous_seq in broken:
        owner = owners.get(prev_hash)
        if owner is not None and owner != previous_seq:
            problems.append(LogProblem(
                "out-of-order", seq, f"entry {seq} was chained after entry {owner}, but now "
                f"follows entry {previous_seq}: entries were reordered or inserted"))
        else:
            problems.append(LogProblem(
                "broken-link", seq, f"entry {seq} does not follow entry {previous_seq}: an entry "
                "was inserted, replaced or rewritten before it"))
    return problems


def _anchor_locations(settings: Settings) -> list[Location]:
    policy = load_storage_policy(settings)
    from storage.locations import open_location

    return [open_location(spec, settings=settings) for spec in policy.locations]


# -- the head recorded in the catalogue and the facts the log must account for ---------------

def check_head(catalogue: Catalogue, result: LogVerification) -> LogVerification:
    """Compare the walked chain with the head the catalogue records with every entry.

    Entries deleted from the end of the log leave the chain consistent, but the recorded
    head names an entry the log no longer has (and counts more entries than are left).
    """
    head = catalogue.audit_head()
    if head is None:
        return result
    seq, digest, appended = head
    with catalogue.session() as s:
        present = int(s.scalar(select(func.count()).select_from(m.AuditEntry)) or 0)
    if (seq, digest) != (result.head_seq, result.head_hash):
        with catalogue.session() as s:
            row = s.get(m.AuditEntry, seq)
        if row is None or row.hash != digest:
            what = "no longer in the log" if row is None else "different in the log"
            result.problems.append(LogProblem(
                "head", seq, f"the catalogue's head record names entry {seq} "
                f"({digest[:16]}…), which is {what}, whose last entry is {result.head_seq}: "
                "entries were deleted from the end of the log, or it was rewritten"))
        else:
            result.problems.append(LogProblem(
                "head", result.head_seq, f"the log goes on after entry {seq}, the last one the "
                f"head record names: entries {seq + 1}-{result.head_seq} were added past the "
                "catalogue's own code"))
    elif appended != present:
        result.problems.append(LogProblem(
            "deleted", None, f"{appended} entries were appended and {present} are left: "
            f"{appended - present} deleted" if appended > present else
            f"{present} entries, but only {appended} were appended through the catalogue"))
    return result


@dataclass(frozen=True)
class Fact:
    """Something the catalogue keeps that an audit-log entry must account for.

    ``query`` selects, for each row of the catalogue that needs it, a key and the object
    (``object_sql``) the entry with ``action`` must name.
    """

    what: str
    action: str
    table: str
    key_sql: str
    object_sql: str
    where: str = "1 = 1"


FACTS = (
    Fact("AIP", "ingest", "aips", "uuid", "uuid"),
    Fact("deleted AIP", "delete", "aips", "uuid", "uuid", "status = 'DELETED'"),
    Fact("accepted transfer", "transfer-accepted", "transfers", "id", "id",
         "status = 'accepted'"),
    Fact("rejected transfer", "transfer-rejected", "transfers", "id", "id",
         "status = 'rejected'"),
    Fact("abandoned transfer", "transfer-abandoned", "transfers", "id", "id",
         "status = 'abandoned'"),
    Fact("API key", "apikey-create", "api_keys", "id", "'apikey:' || id"),
    Fact("revoked API key", "apikey-revoke", "api_keys", "id", "'apikey:' || id",
         "revoked_at IS NOT NULL"),
    Fact("portal user", "user-add", "users", "username", "username"),
    Fact("audit run", "audit-start", "fixity_runs", "id", "id"),
    Fact("repair request", "repair-requested", "fixity_repairs", "id", "aip_uuid"),
)
"""The catalogue's facts and the entries that must account for them. Each row's entry is
looked up by action and object (an index), so the cross-check costs one anti-join each."""

MAX_MISSING_SHOWN = 5


def check_facts(catalogue: Catalogue, result: LogVerification) -> LogVerification:
    """Report every fact of the catalogue that no audit-log entry accounts for.

    A log whose tail was deleted and whose head record was then corrected still lacks the
    entries of the API keys, AIPs, users … created in that tail; so does one rolled back
    to an old copy while the rest of the catalogue is current. Fixity checks are counted
    (each is one ``fixity-check`` entry), and every anchor recorded as written must name
    an entry the log has.
    """
    from storage.fixity import AuditAnchor, CopyCheck

    with catalogue.session() as s:
        tables = set(inspect(s.connection()).get_table_names())
        for fact in FACTS:
            if fact.table not in tables:
                continue
            missing = s.execute(text(
                f"SELECT {fact.key_sql} FROM {fact.table} t WHERE {fact.where} AND NOT EXISTS "
                f"(SELECT 1 FROM audit_log l WHERE l.action = :action "
                f"AND l.object = {fact.object_sql}) ORDER BY 1"), {"action": fact.action}
            ).scalars().all()
            if missing:
                shown = ", ".join(str(k) for k in missing[:MAX_MISSING_SHOWN])
                more = f" and {len(missing) - MAX_MISSING_SHOWN} more" \
                    if len(missing) > MAX_MISSING_SHOWN else ""
                result.problems.append(LogProblem(
                    "unaccounted", None, f"{len(missing)} {fact.what}(s) in the catalogue "
                    f"without their '{fact.action}' entry ({shown}{more}): entries were "
                    "deleted from the log"))
        checks = int(s.scalar(select(func.count()).select_from(CopyCheck)) or 0)
        logged = int(s.scalar(select(func.count()).select_from(m.AuditEntry)
                              .where(m.AuditEntry.action == "fixity-check")) or 0)
        if checks > logged:
            result.problems.append(LogProblem(
                "unaccounted", None, f"{checks} fixity checks in the catalogue but {logged} "
                "'fixity-check' entries: entries were deleted from the log"))
        anchored = s.scalar(select(func.max(AuditAnchor.seq)))
    if anchored is not None and anchored > result.head_seq:
        result.problems.append(LogProblem(
            "truncated", anchored, f"entry {anchored} was anchored in storage (audit_anchors), "
            f"but the log ends at entry {result.head_seq}: the log was truncated"))
    return result


# -- anchors in storage ----------------------------------------------------------------------

def check_anchors(catalogue: Catalogue, settings: Settings,
                  result: LogVerification) -> LogVerification:
    """Compare the database with the anchor each storage location holds."""
    recorded = _recorded_anchors(catalogue)
    for location in _anchor_locations(settings):
        state = _read_anchor(location)
        if state.status == "ok":
            _compare_anchor(catalogue, state, result)
        _judge_anchor(state, recorded.get(location.name), result)
        result.anchors.append(state)
    return result


def _recorded_anchors(catalogue: Catalogue) -> dict[str, tuple[int, datetime]]:
    """Location -> (seq, written_at) of the newest anchor the catalogue recorded writing."""
    from storage.fixity import AuditAnchor

    with catalogue.session() as s:
        rows = s.execute(select(AuditAnchor.location, AuditAnchor.seq, AuditAnchor.written_at)
                         .order_by(AuditAnchor.seq, AuditAnchor.id)).all()
    return {location: (seq, written_at) for location, seq, written_at in rows}


def _judge_anchor(state: AnchorState, recorded: tuple[int, datetime] | None,
                  result: LogVerification) -> None:
    """Anchors that cannot be read, have gone, or went back are problems, not a shrug."""
    where = f"the anchor at {state.location}"
    if state.status == "unreadable":
        result.problems.append(LogProblem(
            "unreadable-anchor", None, f"{where} cannot be read ({state.message}): it was "
            "replaced or damaged"))
        return
    if recorded is None:
        return
    seq, written_at = recorded
    when = as_utc(written_at).isoformat() if written_at else "?"
    if state.status == "none":
        state.status = "missing"
        state.message = f"gone: entry {seq} was written here at {when} (audit_anchors)"
        result.problems.append(LogProblem(
            "missing-anchor", seq, f"{where} is gone, although entry {seq} was anchored "
            f"there at {when}: it was deleted"))
    elif state.status == "ok" and state.seq is not None and state.seq < seq:
        state.status = "mismatch"
        state.message = (f"records entry {state.seq}, older than entry {seq} written here at "
                         f"{when}")
        result.problems.append(LogProblem(
            "stale-anchor", state.seq, f"{where} {state.message}: it was replaced by an "
            "older one"))


def _read_anchor(location: Location) -> AnchorState:
    try:
        data = json.loads(location.read_admin_object(ANCHOR_NAME))
        seq, digest = int(data["seq"]), str(data["hash"])
    except ObjectNotFound:
        return AnchorState(location.name, "none", message="no anchor written here yet")
    except StorageError as exc:
        return AnchorState(location.name, "unavailable", message=str(exc))
    except (ValueError, TypeError, KeyError) as exc:
        return AnchorState(location.name, "unreadable",
                           message=f"anchor unreadable: {type(exc).__name__}: {exc}")
    return AnchorState(location.name, "ok", seq, digest, str(data.get("at", "")))


def _compare_anchor(catalogue: Catalogue, state: AnchorState, result: LogVerification) -> None:
    with catalogue.session() as s:
        row = s.get(m.AuditEntry, state.seq)
    where = f"the anchor at {state.location} (written {state.written_at})"
    if row is None:
        state.status = "mismatch"
        state.message = f"{where} records entry {state.seq}, which the database no longer has"
        result.problems.append(LogProblem("truncated", state.seq, state.message + ": the log "
                                          "was truncated, rolled back or rewritten"))
    elif row.hash != state.hash:
        state.status = "mismatch"
        state.message = f"{where} records entry {state.seq} with a different hash"
        result.problems.append(LogProblem("rewritten", state.seq, state.message + ": the log "
                                          "was rewritten"))


def verify(catalogue: Catalogue, settings: Settings) -> LogVerification:
    """Verify the chain, the recorded head, the catalogue's facts and the anchors in storage."""
    result = check_head(catalogue, verify_chain(catalogue))
    check_facts(catalogue, result)
    check_anchors(catalogue, settings, result)
    result.problems.sort(key=_problem_order)
    return result


def _problem_order(problem: LogProblem) -> tuple[float, str]:
    """Problems by entry, those of the whole log (no entry) last."""
    return (float("inf") if problem.seq is None else problem.seq, problem.kind)


REPLACEABLE = {"unreadable-anchor", "missing-anchor"}
"""Anchor problems ``write_anchors(replace_damaged=True)`` may write over (logged)."""


def write_anchors(catalogue: Catalogue, settings: Settings, *, cross_check: bool = False,
                  replace_damaged: bool = False, actor: str = "dangan") -> LogVerification:
    """Write the chain head into every storage location that can keep it.

    Nothing is written when the log does not verify: an anchor already in storage that the
    database contradicts, is unreadable, has gone or went back; a broken chain after the
    newest agreeing anchor (which vouches for everything before it); a head record that
    disagrees; with ``cross_check``, facts of the catalogue the log does not account for.
    A new anchor must never bless a log that was tampered with, nor cover the evidence.
    With ``replace_damaged`` anchors that are unreadable or gone are written over, and an
    ``anchor-replaced`` entry says so. The result says what was written where.
    """
    with _anchoring(settings, catalogue):
        result = LogVerification()
        recorded = _recorded_anchors(catalogue)
        locations = _anchor_locations(settings)
        states = [_read_anchor(location) for location in locations]
        for state in states:
            if state.status == "ok":
                _compare_anchor(catalogue, state, result)
            _judge_anchor(state, recorded.get(state.location), result)
        damaged = [p for p in result.problems if p.kind in REPLACEABLE]
        if replace_damaged and damaged and len(damaged) == len(result.problems):
            catalogue.audit(actor, "anchor-replaced", "audit-log",
                            {"problems": [p.message for p in damaged]})
            result.problems = []
        agreeing = [s for s in states if s.status == "ok"]
        if not result.problems:
            # the newest agreeing anchor vouches for everything up to it: walk what follows
            newest = max(agreeing, key=lambda a: a.seq or 0) if agreeing else None
            result = check_head(catalogue, verify_chain(
                catalogue, (newest.seq, newest.hash) if newest else None))
            if cross_check:
                check_facts(catalogue, result)
        result.anchors = states
        if not result.intact or result.head_seq == 0:
            return result
        if all(s.status == "ok" and s.seq == result.head_seq for s in states):
            AUDIT_WRITTEN.pop(catalogue.url, None)
            return result       # nothing new since the last anchor
        _write_head(catalogue, locations, result)
    return result


def _write_head(catalogue: Catalogue, locations: list[Location],
                result: LogVerification) -> None:
    from storage.fixity import AuditAnchor

    body = json.dumps({"seq": result.head_seq, "hash": result.head_hash,
                       "at": utcnow().isoformat()},
                      sort_keys=True).encode("utf-8")
    written = []
    for location in locations:
        try:
            location.write_admin_object(ANCHOR_NAME, body)
        except StorageError as exc:
            _set_anchor(result, location.name, "unavailable", f"not written: {exc}")
            continue
        written.append(location.name)
        _set_anchor(result, location.name, "ok", "written", result.head_seq, result.head_hash)
    if written:
        AUDIT_WRITTEN.pop(catalogue.url, None)
        with catalogue.session() as s:
            s.add_all(AuditAnchor(location=name, seq=result.head_seq, hash=result.head_hash,
                                  written_at=utcnow()) for name in written)


@contextmanager
def _anchoring(settings: Settings, catalogue: Catalogue) -> Iterator[None]:
    """One anchor writer at a time, so that anchors in storage only ever move forward (two
    writers could otherwise put an older head over a newer one): a lock file on this
    machine, and on PostgreSQL an advisory lock for writers on other machines."""
    path = settings.home / "locks" / "audit-anchor.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            with catalogue.named_lock("audit-anchor"):
                yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def anchor_written(settings: Settings, catalogue: Catalogue | None = None, *,
                   actor: str = "dangan") -> LogVerification | None:
    """Anchor the audit log in storage if this process appended entries since its last anchor.

    Called when a command, a portal request or a job ends (``catalogue``: the one it used;
    default: opened here). Returns None when nothing was due (nothing written, or only
    routine entries anchored less than ``[audit] anchor_interval_seconds`` ago).
    """
    url = catalogue.url if catalogue is not None else settings.get("catalogue", "url")
    actions = AUDIT_WRITTEN.get(url)
    if not actions:
        return None
    own = catalogue is None
    catalogue = catalogue or Catalogue.open(settings)
    try:
        if actions <= ROUTINE_ACTIONS and not _interval_passed(catalogue, settings):
            return None
        return write_anchors(catalogue, settings, actor=actor)
    finally:
        if own:
            catalogue.engine.dispose()


def _interval_passed(catalogue: Catalogue, settings: Settings) -> bool:
    interval = settings.int("audit", "anchor_interval_seconds")
    # core constructs, not the fixity models: reading ends every portal request and command
    anchors = table("audit_anchors", column("written_at", DateTime()))
    with catalogue.session() as s:
        last = s.scalar(select(func.max(anchors.c.written_at)))
    return last is None or (utcnow() - as_utc(last)).total_seconds() >= interval


def _set_anchor(result: LogVerification, name: str, status: str, message: str,
                seq: int | None = None, digest: str | None = None) -> None:
    for state in result.anchors:
        if state.location == name:
            state.status, state.message = status, message
            if seq is not None:
                state.seq, state.hash = seq, digest
            return
    result.anchors.append(AnchorState(name, status, seq, digest, None, message))


# -- policy changes --------------------------------------------------------------------------

def _policy_names(settings: Settings) -> list[str]:
    names = {p.stem for p in DATA.glob("*.yaml")}
    own = settings.home / "policies"
    if own.is_dir():
        names |= {p.stem for p in own.glob("*.yaml")}
    return sorted(names)


def record_policy_changes(catalogue: Catalogue, settings: Settings, actor: str = "dangan") -> list[str]:
    """Append a ``policy-change`` entry for every policy whose file changed since last seen.

    The first time a policy is seen its digest is recorded (``previous`` is null), so later
    changes have something to be compared with. Returns the names of the changed policies.
    """
    digests = {}
    for name in _policy_names(settings):
        path = policy_path(name, settings)
        try:
            digests[f"policy:{name}"] = (name, path, hashlib.sha256(path.read_bytes()).hexdigest())
        except OSError:
            continue
    changed = []
    with catalogue.session() as s:
        # the newest entry per policy, in one query (seq order: the last one read wins)
        last = {row.object: (row.detail or {}).get("sha256") for row in s.execute(
            select(m.AuditEntry.object, m.AuditEntry.detail)
            .where(m.AuditEntry.action == "policy-change", m.AuditEntry.object.in_(digests))
            .order_by(m.AuditEntry.seq))}
        for obj, (name, path, digest) in digests.items():
            previous = last.get(obj)
            if previous == digest:
                continue
            catalogue.append_audit(s, actor, "policy-change", obj,
                                   {"file": str(path), "sha256": digest, "previous": previous})
            changed.append(name)
    return changed


def recent_entries(catalogue: Catalogue, limit: int = 50) -> list[dict[str, Any]]:
    """The last entries of the log, newest last, as plain data."""
    with catalogue.session() as s:
        rows = s.scalars(select(m.AuditEntry).order_by(m.AuditEntry.seq.desc())
                         .limit(limit)).all()
    return [{"seq": r.seq, "at": _iso(as_utc(r.at)), "actor": r.actor, "action": r.action,
             "object": r.object, "detail": r.detail, "hash": r.hash} for r in reversed(rows)]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
