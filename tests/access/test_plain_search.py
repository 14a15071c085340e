"""``dangan search`` and ``dangan show`` in plain SQL (access.plain, storage.catalogue.reading)
give what the ORM-backed services give: the same hits, totals, facets, audit entries and record
details, on the SQLite sample holding; on PostgreSQL the command takes the services' path."""

from __future__ import annotations

import json
import os

import pytest

from access import plain
from access.rules import Reader
from access.services import AccessService
from storage.catalogue import Catalogue, reading

QUERIES = ["因病", "户主", "低保", "year:2016", "因病 -低保", "没有这个词", "category:02", "630121"]
ROLES = ["archivist", "researcher", "public"]
SQLITE = os.environ.get("DANGAN_TEST_CATALOGUE", "sqlite") == "sqlite"


def _last_entry(catalogue: Catalogue) -> tuple | None:
    with catalogue.engine.connect() as connection:
        rows = reading.Rows.of_connection(connection)
        row = rows.first("SELECT seq, actor, action, object, detail FROM audit_log "
                         "ORDER BY seq DESC LIMIT 1")
    if row is None:
        return None
    return (row["seq"], row["actor"], row["action"], row["object"], reading.as_json(row["detail"]))


@pytest.fixture
def holding(home, sample, cli):
    assert cli("ingest", sample).code == 0
    assert cli("search", "户主").code == 0      # brings the access view up to date
    return home


def test_plain_search_equals_the_services_search(holding):
    if not SQLITE:
        reader = Reader("archivist", "cli-test")
        assert plain.search(holding, reader, "因病") is plain.NOT_HERE
        return
    catalogue = Catalogue.open(holding)
    service = AccessService(holding, catalogue, columnar=False)
    audited = 0
    for role in ROLES:
        reader = Reader(role, "cli-test" if role != "public" else None)
        for query in QUERIES:
            for page, per_page in ((1, 20), (2, 5)):
                before = _last_entry(catalogue)
                mine = plain.search(holding, reader, query, page=page, per_page=per_page)
                assert mine is not plain.NOT_HERE
                entry = _last_entry(catalogue)
                theirs = service.search(reader, query, page=page, per_page=per_page)
                their_entry = _last_entry(catalogue)
                assert (mine.total, mine.hits, mine.facets) == \
                    (theirs.total, theirs.hits, theirs.facets), (role, query, page)
                if entry == before:
                    assert their_entry == before, (role, query, page)
                    continue
                audited += 1
                assert their_entry[0] == entry[0] + 1
                assert their_entry[1:] == entry[1:], (role, query, page)
    assert audited >= 4, "staff searches showing restricted records are audited"
    from storage.catalogue import auditlog

    assert auditlog.verify_chain(catalogue, None).intact


def test_plain_show_equals_the_catalogue_details(holding, cli):
    catalogue = Catalogue.open(holding)
    found = json.loads(cli("search", "户主", "--json").out)["hits"]
    for aip in sorted({h["aip"] for h in found}):
        theirs = catalogue.aip_details(aip)
        with reading.reading(holding) as rows:
            mine = reading.aip_details(rows, aip[:13])    # a prefix names one AIP too
            assert (rows.connection is None) == SQLITE
        assert mine == theirs
        shown = cli("show", aip, "--json")
        assert shown.code == 0 and json.loads(shown.out)["uuid"] == aip
