"""A PostgreSQL cluster for the tests (a pytest plugin loaded by tests/conftest.py).

Debian's PostgreSQL (``/usr/lib/postgresql/<version>/bin``) refuses to run as root, so the
cluster is created and run as the ``postgres`` user, in a temporary folder it owns, with trust
authentication on 127.0.0.1 and a free port; durability is switched off (a test cluster).
A template database holds the migrated schema, so a test's fresh database is a quick copy.

With ``DANGAN_TEST_CATALOGUE=postgresql`` the ``home`` fixture points every test's catalogue at
a fresh database here; tests that need PostgreSQL in any case use ``pg_catalogue_url``.
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
