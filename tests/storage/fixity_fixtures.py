"""Fixtures of the fixity tests, loaded as a plugin: ``pytest_plugins = ["fixity_fixtures"]``.

- ``fixity_master`` (session): a home with the 5-household sample ingested into two
  filesystem locations, ``a`` and ``b``; built once.
- ``repo``: a private copy of it in the test's own home (the ``home`` fixture), so that the
  ``cli`` fixture works on it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pg_cluster import clone_catalogue, postgres_catalogue_for
from fixity_support import FAST_INGEST, TWO_COPIES, Repo, ingest_sample, write_policy

from policies import Settings, load_settings


@pytest.fixture(scope="session")
def fixity_master(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                  sample_master: Path) -> tuple[Path, list[str]]:
    """A home with the 5-household sample ingested into two filesystem locations (once)."""
    from storage.catalogue import Catalogue

    folder = tmp_path_factory.mktemp("fixity-master") / "home"
    postgres_catalogue_for(request, folder)
    write_policy(folder, "storage", TWO_COPIES)
    settings = load_settings(folder, environ=FAST_INGEST)
    uuids = ingest_sample(settings, sample_master)
    Catalogue.open(settings).engine.dispose()   # checkpoint the WAL before copying the files
    return folder, uuids


@pytest.fixture
def repo(request: pytest.FixtureRequest, home: Settings,
         fixity_master: tuple[Path, list[str]]) -> Repo:
    """A private copy of the master repository in the test's own home."""
    master, uuids = fixity_master
    shutil.copytree(master, home.home, dirs_exist_ok=True, symlinks=True)
    clone_catalogue(request, master, home.home)
    shutil.rmtree(home.home / "locks", ignore_errors=True)
    return Repo(load_settings(home.home), list(uuids))


