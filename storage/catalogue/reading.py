"""Reading the catalogue without the ORM: the queries of a record view, in plain SQL.

``dangan show`` answers from these queries alone, and :meth:`Catalogue.aip_details` and
:func:`storage.aip.versions_of` run the same ones on their session's connection, so there is
one way an AIP's details are read. A :class:`Rows` runs a statement (``:name`` parameters)
on one of two connections:

- a SQLite catalogue: the standard library's ``sqlite3`` (importing SQLAlchemy's ORM costs a
  command a third of a second; ``sqlite3`` a hundredth);
- anything else (PostgreSQL), or a session of the ORM: an SQLAlchemy connection and
  ``text()`` statements.

Values come back as the catalogue's drivers store them (on SQLite, timestamps and dates as
text and JSON as its text); :func:`when`, :func:`day` and :func:`as_json` turn them into what
the ORM would have given, so the answers of both connections are the same.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from policies.errors import CatalogueError, NotFoundError

#: stored paths of the versions after the first (as :data:`storage.aip.VERSIONS`)
VERSIONS = "versions/"

Row = dict[str, Any]
MIGRATIONS = Path(__file__).with_name("migrations")
DERIVATION_EVENTS = ("normalization", "migration")
"""Events whose files (source, derivative) ``aip_details`` lists."""


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The newest migration's revision, read from the files in ``migrations/versions``."""
    revisions, parents = set(), set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        found = re.search(r"^revision\s*=\s*['\"](\w+)['\"]", source, re.M)
        if found:
            revisions.add(found.group(1))
            parents.update(re.findall(r"^down_revision\s*=\s*['\"](\w+)['\"]", source, re.M))
    heads = revisions - parents
    if len(heads) != 1:
        raise CatalogueError(f"migrations: expected one head revision, found {sorted(heads)}")
    return heads.pop()


class Rows:
    """Runs read statements on one catalogue connection; see the module's doc."""

    def __init__(self, run: Callable[[str, dict[str, Any]], list[Row]], dialect: str,
                 connection: Any = None, cursor: Callable[..., Any] | None = None) -> None:
        self._run = run
        self.dialect = dialect
        #: the SQLAlchemy connection underneath (None: ``sqlite3``)
        self.connection = connection
        self._cursor = cursor

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> "Result":
        """A statement's result, read as SQLAlchemy's results are (keys, rows, mappings)."""
        if self.connection is not None:
            from sqlalchemy import text

            return self.connection.execute(text(sql), params or {})
        cursor = self._cursor(_expand(sql, params or {}), _flat(params or {}))
        return Result([d[0] for d in cursor.description or ()], cursor.fetchall())

    def all(self, sql: str, **params: Any) -> list[Row]:
        """Every row of a statement, each as a dict of its columns."""
        return self._run(sql, params)

    def first(self, sql: str, **params: Any) -> Row | None:
        rows = self._run(sql, params)
        return rows[0] if rows else None

    def scalar(self, sql: str, **params: Any) -> Any:
        row = self.first(sql, **params)
        return next(iter(row.values())) if row else None

    @classmethod
    def of_connection(cls, connection: Any) -> "Rows":
        """Statements on an SQLAlchemy connection (or an ORM session's)."""
        from sqlalchemy import text

        def run(sql: str, params: dict[str, Any]) -> list[Row]:
            return [dict(r._mapping) for r in connection.execute(text(sql), params)]

        return cls(run, connection.dialect.name, connection)


class Result:
    """The rows of one statement on ``sqlite3``, as the part of SQLAlchemy's ``Result`` the
    search engine reads: ``keys()``, ``fetchall()``, ``mappings()`` and iteration."""

    def __init__(self, names: list[str], rows: list[tuple]) -> None:
        self._names, self._rows = names, rows

    def keys(self) -> list[str]:
        return list(self._names)

    def fetchall(self) -> list[tuple]:
        return list(self._rows)

    def __iter__(self) -> Iterator[tuple]:
        return iter(self._rows)

    def mappings(self) -> list[Row]:
        return [dict(zip(self._names, row)) for row in self._rows]

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None


def execute(connection: Any, sql: str, params: dict[str, Any] | None = None) -> Any:
    """Run one statement (``:name`` parameters) on a catalogue connection: SQLAlchemy's or a
    :class:`Rows`."""
    if isinstance(connection, Rows):
        return connection.execute(sql, params)
    from sqlalchemy import text

    return connection.execute(text(sql), params or {})


def dialect(connection: Any) -> str:
    """``sqlite`` or ``postgresql``: the database of a catalogue connection."""
    return connection.dialect if isinstance(connection, Rows) else connection.dialect.name


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` catalogue URL (None: another database, or one
    in memory)."""
    if not url.startswith("sqlite:///") or url == "sqlite:///:memory:":
        return None
    return Path(url.removeprefix("sqlite:///").split("?", 1)[0])


@contextmanager
def reading(settings: Any) -> Iterator[Rows]:
    """The home's catalogue, for reading, in one read transaction.

    A SQLite catalogue is read through ``sqlite3`` when it exists with its schema up to date;
    otherwise (a new home, a schema to migrate, PostgreSQL) the catalogue is opened as every
    command opens it (migrating it) and read through SQLAlchemy."""
    url = settings.get("catalogue", "url")
    path = sqlite_path(url)
    if path is not None and path.is_file():
        import sqlite3

        connection = sqlite3.connect(str(path), timeout=30, isolation_level=None)
        try:
            connection.execute("PRAGMA busy_timeout=30000")
            connection.execute("BEGIN")     # one snapshot for every statement
            rows = Rows(_sqlite_runner(connection), "sqlite", cursor=connection.execute)
            try:
                current = rows.scalar("SELECT version_num FROM alembic_version")
            except sqlite3.Error:
                current = None
            if current is not None and current == head_revision():
                try:
                    yield rows
                except sqlite3.Error as exc:
                    raise CatalogueError(f"catalogue {url}: {exc}") from exc
                return
        finally:
            connection.close()
    from storage.catalogue.database import Catalogue

    catalogue = Catalogue.open(settings)
    with catalogue.engine.connect() as connection, connection.begin():
        yield Rows.of_connection(connection)


@contextmanager
def writing(settings: Any) -> Iterator[Rows]:
    """A SQLite catalogue file (see :func:`reading`) in one write transaction, committed when
    the block ends without an error. Only for statements that write no ORM-managed state
    beyond what they say (the audit log's :func:`storage.catalogue.journal.append_entry`)."""
    import sqlite3

    path = sqlite_path(settings.get("catalogue", "url"))
    if path is None or not path.is_file():
        raise ValueError(f"not a SQLite catalogue file: {settings.get('catalogue', 'url')}")
    connection = sqlite3.connect(str(path), timeout=30, isolation_level=None)
    try:
        connection.execute("PRAGMA busy_timeout=30000")
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield Rows(_sqlite_runner(connection), "sqlite", cursor=connection.execute)
        except sqlite3.Error as exc:
            connection.execute("ROLLBACK")
            raise CatalogueError(f"catalogue {path}: {exc}") from exc
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
    finally:
        connection.close()


def _sqlite_runner(connection: Any) -> Callable[[str, dict[str, Any]], list[Row]]:
    def run(sql: str, params: dict[str, Any]) -> list[Row]:
        cursor = connection.execute(_expand(sql, params), _flat(params))
        names = [d[0] for d in cursor.description or ()]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    return run


def _expand(sql: str, params: dict[str, Any]) -> str:
    """``IN :name`` with a list or tuple, as SQLite's driver wants it: ``IN (:name_0, …)``."""
    for name, value in params.items():
        if isinstance(value, (list, tuple, set, frozenset)):
            marks = ", ".join(f":{name}_{i}" for i in range(len(value))) or "NULL"
            sql = re.sub(rf":{name}\b", f"({marks})", sql)
    return sql


def _flat(params: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, (list, tuple, set, frozenset)):
            flat.update({f"{name}_{i}": v for i, v in enumerate(value)})
        else:
            flat[name] = value
    return flat


# -- values as the ORM gives them ---------------------------------------------------------

def when(value: Any) -> datetime | None:
    """A stored timestamp (SQLite: text, without a zone, as SQLAlchemy writes it)."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def day(value: Any) -> date | None:
    """A stored date."""
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def as_json(value: Any) -> Any:
    """A stored JSON value (SQLite: its text)."""
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def _iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value else None


# -- the queries -----------------------------------------------------------------------------

AIP_COLUMNS = ("uuid, transfer_id, archival_code, label, status, profile, created_at, size, "
               "file_count, retention_period, expiry_date, open_date, control_id, pii_level, "
               "record, supersedes")


def aip_row(rows: Rows, uuid: str) -> Row:
    """One AIP's row (by its UUID, or a prefix naming one AIP), or NotFoundError."""
    row = rows.first(f"SELECT {AIP_COLUMNS} FROM aips WHERE uuid = :uuid", uuid=uuid)
    if row is None:
        # LIKE with its wildcards escaped: a prefix, as the ORM's startswith() reads it
        pattern = re.sub(r"([\\%_])", r"\\\1", uuid) + "%"
        matches = rows.all(f"SELECT {AIP_COLUMNS} FROM aips WHERE uuid LIKE :p ESCAPE '\\'",
                           p=pattern)
        if len(matches) != 1:
            raise NotFoundError(f"no AIP {uuid}")
        row = matches[0]
    row["created_at"] = when(row["created_at"])
    row["expiry_date"], row["open_date"] = day(row["expiry_date"]), day(row["open_date"])
    row["record"] = as_json(row["record"])
    return row


def aip_details(rows: Rows, uuid: str) -> dict[str, Any]:
    """Everything the catalogue knows of an AIP, as plain data (see
    :meth:`storage.catalogue.Catalogue.aip_details`)."""
    aip = aip_row(rows, uuid)
    uuid = aip["uuid"]
    files = rows.all("SELECT key, path, original_name, size, digests, mime, puid, format_name, "
                     "format_version, use, item_key, derived_from FROM files WHERE aip_uuid = :u "
                     "ORDER BY path", u=uuid)
    items = rows.all("SELECT key, parent_key, level, archival_code, title, date, fields "
                     "FROM items WHERE aip_uuid = :u ORDER BY id", u=uuid)
    copies = rows.all("SELECT location, url, status, verified_at, bytes FROM copies "
                      "WHERE aip_uuid = :u ORDER BY location", u=uuid)
    events = rows.all("SELECT id, type, at, outcome, detail, outcome_detail, agents, location, "
                      "files FROM events WHERE aip_uuid = :u ORDER BY at, type", u=uuid)
    return {
        "uuid": uuid, "archival_code": aip["archival_code"], "label": aip["label"],
        "status": aip["status"], "profile": aip["profile"], "transfer": aip["transfer_id"],
        "created": aip["created_at"].isoformat(), "size": aip["size"],
        "file_count": aip["file_count"], "retention_period": aip["retention_period"],
        "expiry_date": _iso(aip["expiry_date"]), "open_date": _iso(aip["open_date"]),
        "control_id": aip["control_id"], "pii_level": aip["pii_level"],
        "record": aip["record"],
        "items": [{"key": i["key"], "parent": i["parent_key"], "level": i["level"],
                   "archival_code": i["archival_code"], "title": i["title"], "date": i["date"],
                   "fields": as_json(i["fields"])} for i in items],
        "files": [{"key": f["key"], "path": f["path"], "original_name": f["original_name"],
                   "size": f["size"], "digests": as_json(f["digests"]), "mime": f["mime"],
                   "puid": f["puid"], "format_name": f["format_name"],
                   "format_version": f["format_version"], "use": f["use"],
                   "item": f["item_key"],
                   **({"derived_from": f["derived_from"]} if f["derived_from"] else {})}
                  for f in files],
        "copies": [{"location": c["location"], "url": c["url"], "status": c["status"],
                    "verified_at": _iso(when(c["verified_at"])), "bytes": c["bytes"]}
                   for c in copies],
        "events": [{"id": e["id"], "type": e["type"], "at": when(e["at"]).isoformat(),
                    "outcome": e["outcome"], "detail": e["detail"],
                    "outcome_detail": e["outcome_detail"], "agents": as_json(e["agents"]),
                    "location": e["location"],
                    **({"files": as_json(e["files"])} if e["type"] in DERIVATION_EVENTS else {})}
                   for e in events],
    }


def _version_time(value: Any) -> str:
    stamp = when(value)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return stamp.isoformat(timespec="seconds")


def versions(rows: Rows, aip_uuid: str) -> list[Row]:
    """Every version of an AIP, oldest first, as the fields of
    :class:`storage.aip.VersionInfo`; an AIP never updated has its version 1 only."""
    aip = rows.first("SELECT created_at FROM aips WHERE uuid = :u", u=aip_uuid)
    if aip is None:
        raise NotFoundError(f"no AIP {aip_uuid}")
    found = rows.all("SELECT number, created_at, agent, reason, kind, supersedes, changes, "
                     "file_count, bytes_added, inventory FROM aip_versions "
                     "WHERE aip_uuid = :u ORDER BY number", u=aip_uuid)
    first: list[Row] = []
    if not found or found[0]["number"] != 1:
        count = rows.scalar("SELECT count(*) FROM files WHERE aip_uuid = :u "
                            "AND path NOT LIKE :v", u=aip_uuid, v=VERSIONS + "%")
        first = [{"number": 1, "created": _version_time(aip["created_at"]), "agent": "dangan",
                  "reason": "ingest", "kind": "ingestion", "supersedes": None, "changes": {},
                  "file_count": int(count or 0), "bytes_added": 0, "inventory": None}]
    return first + [{"number": r["number"], "created": _version_time(r["created_at"]),
                     "agent": r["agent"], "reason": r["reason"], "kind": r["kind"],
                     "supersedes": r["supersedes"], "changes": dict(as_json(r["changes"]) or {}),
                     "file_count": r["file_count"], "bytes_added": r["bytes_added"],
                     "inventory": r["inventory"]} for r in found]


def current_version(rows: Rows, aip_uuid: str) -> int:
    """The newest version number of an AIP (1 when it was never updated)."""
    return int(rows.scalar("SELECT max(number) FROM aip_versions WHERE aip_uuid = :u",
                           u=aip_uuid) or 1)


def version_paths(rows: Rows, aip_uuid: str, number: int | None = None) -> dict[str, str]:
    """Logical path -> the stored path of the object holding it, for one version (default:
    the newest)."""
    number = number or current_version(rows, aip_uuid)
    stored = [r["path"] for r in rows.all("SELECT path FROM files WHERE aip_uuid = :u",
                                          u=aip_uuid)]
    if number == 1:
        return {p: p for p in stored if not p.startswith(VERSIONS)}
    found = rows.all("SELECT path, stored_path FROM aip_version_files "
                     "WHERE aip_uuid = :u AND version = :n", u=aip_uuid, n=number)
    if not found:
        raise NotFoundError(f"AIP {aip_uuid} has no version {number}")
    held = set(stored)
    missing = [r["stored_path"] for r in found if r["stored_path"] not in held]
    if missing:
        raise KeyError(missing[0])
    return {r["path"]: r["stored_path"] for r in found}
