"""A PostgreSQL cluster for the tests (a pytest plugin loaded by tests/conftest.py).

Debian's PostgreSQL (``/usr/lib/postgresql/<version>/bin``) refuses to run as root, so the
cluster is created and run as the ``postgres`` user, in a temporary folder it owns, with trust
authentication on 127.0.0.1 and a free port; durability is switched off (a test cluster).
A template database holds the migrated schema, so a test's fresh database is a quick copy.

With ``DANGAN_TEST_CATALOGUE=postgresql`` the ``home`` fixture points every test's catalogue at
a fresh database here (in the home's ``dangan.toml``); tests that need PostgreSQL in any case
use ``pg_catalogue_url``. A fixture that builds a master home once and copies it into each
test's home (the SQLite file travels with the folder) does the same on PostgreSQL with
:func:`postgres_catalogue_for` (for the master) and :func:`clone_catalogue` (for each copy).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

TEMPLATE = "dangan_template"


# read once: the home fixture removes every DANGAN_* variable while a test runs
_POSTGRES_RUN = os.environ.get("DANGAN_TEST_CATALOGUE") == "postgresql"


def _postgres_run() -> bool:
    return _POSTGRES_RUN


def _set_catalogue(folder: Path, url: str) -> None:
    """Name the catalogue in a home's dangan.toml (kept first: TOML sections may follow)."""
    toml = folder / "dangan.toml"
    rest = toml.read_text(encoding="utf-8") if toml.exists() else ""
    rest = "\n".join(line for line in rest.splitlines()
                     if not line.startswith("url = \"postgresql"))
    rest = rest.replace("[catalogue]\n", "")
    toml.write_text(f'[catalogue]\nurl = "{url}"\n{rest}\n', encoding="utf-8")


def postgres_catalogue_for(request: pytest.FixtureRequest, folder: Path) -> None:
    """On the PostgreSQL run, give a (master) home of a fixture its own migrated database."""
    if not _postgres_run():
        return
    cluster = request.getfixturevalue("pg_cluster")
    template = request.getfixturevalue("pg_template")
    folder.mkdir(parents=True, exist_ok=True)
    _set_catalogue(folder, cluster.create_database(f"m_{uuid.uuid4().hex[:12]}", template))


def clone_catalogue(request: pytest.FixtureRequest, master: Path, home: Path) -> None:
    """On the PostgreSQL run, after copying ``master`` into ``home``: give the home a copy of
    the master's database (the folder copy brought the master's dangan.toml along)."""
    if not _postgres_run():
        return
    cluster = request.getfixturevalue("pg_cluster")
    text = (master / "dangan.toml").read_text(encoding="utf-8")
    source = text.split('url = "', 1)[1].split('"', 1)[0].rsplit("/", 1)[-1]
    # PostgreSQL copies no database that has sessions, and the code that built the master
    # may have left idle pooled connections behind (pools in reference cycles wait for gc)
    cluster.end_sessions(source)
    name = f"c_{uuid.uuid4().hex[:12]}"
    _set_catalogue(home, cluster.create_database(name, template=source))
    request.addfinalizer(lambda: cluster.drop_database(name))


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL server's bin folder, or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    return found[-1].parent if found else None


def _as_postgres(args: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return args
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", "postgres", "--", *args]
    return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(args)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PgCluster:
    """A running test cluster."""

    bin: Path
    folder: Path
    port: int

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of one database."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str) -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE)."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres",
                             dbname="postgres", autocommit=True) as connection:
            connection.execute(sql)

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create a database (optionally a copy of a template); return its URL."""
        self.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return self.url(name)

    def end_sessions(self, database: str) -> None:
        """End every session connected to a database (idle connections left in pools)."""
        self.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     f"WHERE datname = '{database}' AND pid <> pg_backend_pid()")

    def drop_database(self, name: str) -> None:
        """Drop a database, ending its connections."""
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_cluster() -> PgCluster:
    """initdb and start a cluster as the postgres user; the caller stops it.

    Raises:
        RuntimeError: initdb or pg_ctl failed (their output in the message).
    """
    pg = postgres_bin()
    if pg is None:
        raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql")
    folder = Path(tempfile.mkdtemp(prefix="dangan-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    port = _free_port()
    steps = [
        [str(pg / "initdb"), "-D", str(folder / "data"), "-A", "trust", "-U", "postgres",
         "-E", "UTF8", "--locale=C.UTF-8"],
        [str(pg / "pg_ctl"), "-D", str(folder / "data"), "-l", str(folder / "server.log"),
         "-w", "-t", "60", "-o",
         f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off "
         "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300", "start"],
    ]
    for args in steps:
        done = subprocess.run(_as_postgres(args), capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            shutil.rmtree(folder, ignore_errors=True)
            raise RuntimeError(f"{' '.join(args[:1])} failed: {done.stdout}{done.stderr}")
    return PgCluster(pg, folder, port)


def stop_cluster(cluster: PgCluster) -> None:
    """Stop the server and remove its folder."""
    subprocess.run(_as_postgres([str(cluster.bin / "pg_ctl"), "-D", str(cluster.folder / "data"),
                                 "-m", "fast", "-w", "stop"]), capture_output=True, timeout=120)
    shutil.rmtree(cluster.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A PostgreSQL cluster for the whole session, stopped afterwards."""
    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        stop_cluster(cluster)


@pytest.fixture(scope="session")
def pg_template(pg_cluster: PgCluster) -> str:
    """A database holding the migrated catalogue schema, copied by each test's database."""
    from storage.catalogue import Catalogue

    catalogue = Catalogue(pg_cluster.create_database(TEMPLATE))
    catalogue.upgrade()
    catalogue.engine.dispose()
    return TEMPLATE


@pytest.fixture
def pg_catalogue_url(pg_cluster: PgCluster, pg_template: str) -> Iterator[str]:
    """The URL of a fresh, migrated catalogue database, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = pg_cluster.create_database(name, template=pg_template)
    try:
        yield url
    finally:
        pg_cluster.drop_database(name)
