"""Fixtures of the access tests: one ingested holding (built once per session) with review
decisions that open the county documents and one household volume, accounts of every role,
and a portal on it."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from holdings import HOUSEHOLDS, PASSWORD, PLACES, build_transfer, served_settings  # noqa: E402

from policies import Settings, load_settings  # noqa: E402

ROLES = ("admin", "archivist", "auditor", "researcher", "public")


@dataclass
class Holding:
    """The ingested test holding."""

    settings: Settings
    transfer: Path
    general: str  # AIP of the county documents (opened by a review decision)
    restricted: str  # household volume still restricted (HOUSEHOLDS[0])
    opened: str  # household volume opened by a review decision (HOUSEHOLDS[1])

    def aips(self) -> list[str]:
        return [self.general, self.restricted, self.opened]


def _ingest(settings: Settings, transfer: Path) -> dict[str, str]:
    from ingest.pipeline import ingest
    from ingest.textjobs import wait_for_text

    result = ingest(transfer, settings)
    assert result.status == "accepted", result.failures
    # the holding as searched: the OCR queued by the ingest has run
    outcome = wait_for_text(settings, result.text_jobs)
    assert outcome["failed"] == 0, outcome
    return {a["archival_code"] or "general": a["uuid"] for a in result.aips}


@pytest.fixture(scope="session")
def holding(tmp_path_factory: pytest.TempPathFactory) -> Holding:
    """The holding, ingested once; decisions recorded; an account per role."""
    from access import accounts
    from access.rules import Reader
    from access.services import AccessService

    root = tmp_path_factory.mktemp("access-holding")
    folder = root / "home"
    folder.mkdir()
    settings = load_settings(folder, environ={})
    from metadata_profiles import add_places

    add_places(folder, PLACES)       # the fictional township and villages of the holding
    transfer = build_transfer(root / "transfer")
    uuids = _ingest(settings, transfer)
    service = AccessService(settings)
    archivist = Reader("archivist", "fixture")
    general = uuids["general"]
    restricted, opened = uuids[HOUSEHOLDS[0].code], uuids[HOUSEHOLDS[1].code]
    service.record_decision(
        archivist,
        general,
        None,
        open_date=date(2020, 12, 31),
        control="开放",
        basis="县级扶贫政策文件已主动公开，提前开放",
    )
    service.record_decision(
        archivist,
        opened,
        None,
        open_date=date(2020, 1, 1),
        control="开放",
        basis="户主书面同意公开（测试用决定）",
    )
    for role in ROLES[:-1]:
        accounts.add_user(service.catalogue, role, PASSWORD, role)
    return Holding(settings, transfer, general, restricted, opened)


@pytest.fixture(scope="session")
def portal(holding: Holding):
    """The portal app on the holding (one per session; clients are per test)."""
    from access.portal import create_app

    return create_app(served_settings(holding.settings),
                      {"TESTING": True, "WTF_CSRF_ENABLED": False})


@pytest.fixture
def client_for(portal):
    """``client_for(role)``: a test client signed in as that role (public: anonymous)."""

    def make(role: str):
        client = portal.test_client()
        if role != "public":
            portal.test_login(client, role, username=role)
        return client

    return make
