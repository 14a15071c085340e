"""Fixtures shared by every test: a fresh Dangan home, the command line, sample transfers."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import dangan
from policies import Settings, load_settings

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
# the PostgreSQL test cluster and the Elasticsearch-compatible servers (tests/*.py plugins)
pytest_plugins = ["pg_cluster", "es_servers"]


@dataclass
class CliResult:
    """Exit code and captured output of one ``dangan`` command."""

    code: int
    out: str
    err: str


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
         request: pytest.FixtureRequest) -> Settings:
    """A fresh, zero-configuration Dangan home (DANGAN_HOME points at it).

    With ``DANGAN_TEST_CATALOGUE=postgresql`` its catalogue is a fresh PostgreSQL database
    instead of the default SQLite file, named in the home's ``dangan.toml`` (so that commands
    run with a cleaned environment, and other homes a test makes, keep their own catalogue).
    """
    folder = tmp_path / "home"
    folder.mkdir()
    catalogue = os.environ.get("DANGAN_TEST_CATALOGUE", "sqlite")
    for name in list(os.environ):
        if name.startswith("DANGAN_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DANGAN_HOME", str(folder))
    if catalogue == "postgresql":
        url = request.getfixturevalue("pg_catalogue_url")
        (folder / "dangan.toml").write_text(f'[catalogue]\nurl = "{url}"\n', encoding="utf-8")
    return load_settings(folder)


@pytest.fixture
def cli(home: Settings, capsys: pytest.CaptureFixture) -> Callable[..., CliResult]:
    """Run ``dangan ARGS…`` in-process against the test home; returns a CliResult."""

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = dangan.main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def sample_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean 5-household sample transfer, generated once per session (read-only use)."""
    from ingest.sample_transfer import generate

    out = tmp_path_factory.mktemp("sample") / "transfer"
    generate(out, households=5, seed=7)
    return out


@pytest.fixture
def sample(sample_master: Path, tmp_path: Path) -> Path:
    """A private copy of the clean sample transfer that a test may alter."""
    copy = tmp_path / "transfer"
    shutil.copytree(sample_master, copy)
    return copy


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Folder kept after the run for reports and screenshots (test-artifacts/)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
