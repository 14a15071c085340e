"""``dangan search`` with a full ID number: staff find the household by the number's keyed
hash (as the portal does), the look-up is audited with the number masked; other roles are
told the look-up is for staff and find nothing."""

from __future__ import annotations

import json

import pytest
from holdings import HOUSEHOLDS
from sqlalchemy import select


@pytest.fixture
def dangan_cli(holding, monkeypatch, capsys):
    import dangan

    for name in ("DANGAN_CONFIG", "DANGAN_CATALOGUE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DANGAN_HOME", str(holding.settings.home))
    monkeypatch.setenv("USER", "keeper")

    def run(*args: str):
        capsys.readouterr()
        code = dangan.main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def _lookups(holding) -> list:
    from storage.catalogue import Catalogue
    from storage.catalogue.models import AuditEntry

    with Catalogue.open(holding.settings).session() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == "search-id-number")
                              .order_by(AuditEntry.seq)))


def test_staff_find_the_household_by_a_full_id_number(dangan_cli, holding):
    household = HOUSEHOLDS[0]
    number = household.id_number
    masked = number[:6] + "********" + number[-4:]
    before = len(_lookups(holding))
    code, out, _ = dangan_cli("search", number, "--json")
    assert code == 0
    matches = json.loads(out)["id_number_matches"]
    assert {m["aip"] for m in matches} == {holding.restricted}
    assert any(m["archival_code"] and household.code in m["archival_code"] for m in matches)
    code, out, _ = dangan_cli("search", number)
    assert code == 0 and holding.restricted in out and masked in out
    assert number not in out                                       # never printed in full
    entries = _lookups(holding)[before:]
    assert len(entries) == 2
    assert all(e.object == masked and e.actor == "cli-keeper" for e in entries)
    assert all(e.detail["found"] == len(matches) and number not in json.dumps(e.detail)
               for e in entries)
    # the other household's number finds the other household only
    code, out, _ = dangan_cli("search", HOUSEHOLDS[1].id_number, "--json")
    assert {m["aip"] for m in json.loads(out)["id_number_matches"]} == {holding.opened}
    assert len(_lookups(holding)) == before + 3


def test_other_roles_are_told_the_look_up_is_for_staff(dangan_cli, holding):
    before = len(_lookups(holding))
    code, out, err = dangan_cli("search", HOUSEHOLDS[0].id_number, "--as", "researcher",
                                "--json")
    assert code == 0 and "id_number_matches" not in json.loads(out)
    assert "staff only" in err
    assert json.loads(out)["total"] == 0
    assert len(_lookups(holding)) == before
