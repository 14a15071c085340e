"""The tamper-evident audit log: verifying its hash chain, anchoring its head in storage, and
recording policy changes in it.

Every entry's ``hash`` is SHA-256 over the previous entry's hash and the entry itself
(:func:`storage.catalogue.chain_hash`), so editing, deleting, inserting or reordering entries
breaks the chain. Someone able to rewrite the whole database could recompute every hash; so
the head of the chain (its last sequence number and hash) is written regularly into every
storage location, outside any AIP folder (after every audit run, and by
``dangan audit-log anchor``). Verification compares the database with those anchors: a
rewritten or rolled-back log no longer contains the anchored entry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from policies.config import Settings
from policies.errors import ObjectNotFound, StorageError
from policies.loader import DATA, load_storage_policy, policy_path
from storage.catalogue import models as m
from storage.catalogue.database import GENESIS, Catalogue, chain_hash, utcnow
from storage.fixity import AuditAnchor
from storage.fixity import as_utc
from storage.locations import Location, open_location

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
    status: str          # ok | mismatch | none | unavailable
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
    return [open_location(spec, settings=settings) for spec in policy.locations]


def check_anchors(catalogue: Catalogue, settings: Settings,
                  result: LogVerification) -> LogVerification:
    """Compare the database with the anchor each storage location holds."""
    for location in _anchor_locations(settings):
        state = _read_anchor(location)
        if state.status == "ok":
            _compare_anchor(catalogue, state, result)
        result.anchors.append(state)
    return result


def _read_anchor(location: Location) -> AnchorState:
    try:
        data = json.loads(location.read_admin_object(ANCHOR_NAME))
    except ObjectNotFound:
        return AnchorState(location.name, "none", message="no anchor written here yet")
    except StorageError as exc:
        return AnchorState(location.name, "unavailable", message=str(exc))
    except ValueError as exc:
        return AnchorState(location.name, "mismatch", message=f"anchor unreadable: {exc}")
    return AnchorState(location.name, "ok", int(data["seq"]), str(data["hash"]),
                       str(data.get("at", "")))


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
    """Verify the chain and compare it with the anchors in storage."""
    return check_anchors(catalogue, settings, verify_chain(catalogue))


def write_anchors(catalogue: Catalogue, settings: Settings) -> LogVerification:
    """Write the chain head into every storage location that can keep it.

    Nothing is written when the log does not verify: an anchor already in storage that the
    database contradicts, or a broken chain after the newest agreeing anchor (which vouches
    for everything before it). A new anchor must never bless a log that was tampered with.
    The result says what was written where.
    """
    result = LogVerification()
    states = [_read_anchor(location) for location in _anchor_locations(settings)]
    for state in states:
        if state.status == "ok":
            _compare_anchor(catalogue, state, result)
    agreeing = [s for s in states if s.status == "ok"]
    if not result.problems:
        # the newest agreeing anchor vouches for everything up to it: walk only what follows
        newest = max(agreeing, key=lambda a: a.seq or 0) if agreeing else None
        result = verify_chain(catalogue, (newest.seq, newest.hash) if newest else None)
    result.anchors = states
    if not result.intact or result.head_seq == 0:
        return result
    body = json.dumps({"seq": result.head_seq, "hash": result.head_hash,
                       "at": utcnow().isoformat()},
                      sort_keys=True).encode("utf-8")
    written = []
    for location in _anchor_locations(settings):
        try:
            location.write_admin_object(ANCHOR_NAME, body)
        except StorageError as exc:
            _set_anchor(result, location.name, "unavailable", f"not written: {exc}")
            continue
        written.append(location.name)
        _set_anchor(result, location.name, "ok", "written", result.head_seq, result.head_hash)
    if written:
        with catalogue.session() as s:
            s.add_all(AuditAnchor(location=name, seq=result.head_seq, hash=result.head_hash,
                                  written_at=utcnow()) for name in written)
    return result


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
