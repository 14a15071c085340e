"""Appending to the hash-chained audit log in plain SQL, without the ORM.

:meth:`storage.catalogue.Catalogue.append_audit` runs :func:`append_entry` in its session's
transaction, and ``dangan search`` runs it on a ``sqlite3`` connection: one way an entry is
chained. :data:`AUDIT_WRITTEN` records what this process appended, for anchoring in storage
when the command ends (:mod:`storage.catalogue.auditlog`); :func:`anchor_due` tells, without
importing the audit log's machinery, whether that anchoring has anything to do.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timezone
from typing import Any

from storage.catalogue import reading

GENESIS = "0" * 64
AUDIT_WRITTEN: dict[str, set[str]] = {}
"""Catalogue URL -> the actions of the audit-log entries this process committed since the
head was last anchored in storage (see :func:`storage.catalogue.auditlog.anchor_written`)."""

ROUTINE_ACTIONS = frozenset({"login", "search-restricted", "view-restricted", "dip-restricted",
                             "label-scan"})
"""Entries written by reading, many a minute on a busy portal: their head is recorded in the
catalogue at once, and anchored in storage at most every ``[audit] anchor_interval_seconds``.
Every other entry (ingest, keys, users and roles, deletions, repairs, decisions …) is
anchored when the command or request that wrote it ends."""


def utcnow() -> datetime:
    """The current time, timezone-aware UTC, to the second."""
    return datetime.now(timezone.utc).replace(microsecond=0)


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def chain_hash(prev_hash: str, at: datetime, actor: str, action: str, obj: str,
               detail: dict[str, Any]) -> str:
    """The audit-log hash of one entry: SHA-256 over the previous hash and the entry."""
    body = json.dumps([prev_hash, at.isoformat(), actor, action, obj, detail],
                      ensure_ascii=False, sort_keys=True, default=_json_default)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def stored_time(connection: Any, value: datetime) -> Any:
    """A timestamp as the catalogue's driver stores it: on SQLite, the text SQLAlchemy
    writes (UTC, without a zone); elsewhere the value itself."""
    if reading.dialect(connection) != "sqlite":
        return value
    value = value.astimezone(timezone.utc) if value.tzinfo else value
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def append_entry(connection: Any, actor: str, action: str, obj: str,
                 detail: dict[str, Any]) -> int:
    """Append one entry in the connection's transaction, chained to the recorded head;
    return its sequence number.

    The head row (``audit_head``) is updated first: that takes the write lock (SQLite) or the
    row lock (PostgreSQL), so concurrent writers chain one after the other; the entry then
    chains to the hash the head records, which is what was last written even if rows were
    since deleted from the log (the break stays visible).
    """
    def run(sql: str, **params: Any) -> Any:
        return reading.execute(connection, sql, params)

    current = run("UPDATE audit_head SET entries = entries + 1 WHERE id = 1 "
                  "RETURNING seq, hash").fetchall()
    if not current:
        # a catalogue created before the head was recorded, or the row was removed
        prev = run("SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1").scalar() or GENESIS
    else:
        prev = current[0][1]
    at = utcnow()
    detail = json.loads(json.dumps(detail, default=_json_default))
    digest = chain_hash(prev, at, actor, action, obj, detail)
    as_json = "CAST(:detail AS JSON)" if reading.dialect(connection) != "sqlite" else ":detail"
    # a plain INSERT: portal searches by staff append one entry each
    seq = run("INSERT INTO audit_log (at, actor, action, object, detail, prev_hash, hash) "
              f"VALUES (:at, :actor, :action, :object, {as_json}, :prev, :hash) RETURNING seq",
              at=stored_time(connection, at), actor=actor, action=action, object=obj,
              detail=json.dumps(detail), prev=prev, hash=digest).scalar()
    if not current:
        count = run("SELECT count(*) FROM audit_log").scalar() or 0
        run("INSERT INTO audit_head (id, seq, hash, entries) VALUES (1, :seq, :hash, :n)",
            seq=seq, hash=digest, n=count)
    else:
        run("UPDATE audit_head SET seq = :seq, hash = :hash WHERE id = 1", seq=seq, hash=digest)
    return int(seq)


def anchor_due(settings: Any) -> bool:
    """Whether the entries this process appended are to be anchored in storage now: any
    entry that is not routine, or routine ones when the last anchor is older than
    ``[audit] anchor_interval_seconds``. Answers True when it cannot tell cheaply (a catalogue
    that is not a SQLite file): :func:`storage.catalogue.auditlog.anchor_written` decides."""
    actions = AUDIT_WRITTEN.get(settings.get("catalogue", "url"))
    if not actions:
        return False
    if not actions <= ROUTINE_ACTIONS:
        return True
    path = reading.sqlite_path(settings.get("catalogue", "url"))
    if path is None or not path.is_file():
        return True
    import sqlite3

    connection = sqlite3.connect(str(path), timeout=30)
    try:
        last = connection.execute("SELECT max(written_at) FROM audit_anchors").fetchone()[0]
    except sqlite3.Error:
        return True
    finally:
        connection.close()
    if last is None:
        return True
    stamp = reading.when(last)
    stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)
    interval = settings.int("audit", "anchor_interval_seconds")
    return (utcnow() - stamp).total_seconds() >= interval
