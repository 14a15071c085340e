"""The OAI-PMH provider harvested over HTTP by a real harvester (sickle) from a portal served
on 127.0.0.1: a full harvest with resumption (page size 2), from/until and set harvests, the
harvested identifiers equal to the anonymous search's, every answer valid against the
OAI-PMH 2.0 schema, the protocol's error conditions, and nothing of a restricted household
file or of a person's identity in what is harvested."""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest
from holdings import HOUSEHOLDS, served_settings
from lxml import etree

OAI = "{http://www.openarchives.org/OAI/2.0/}"
PAGE = 2


@pytest.fixture(scope="module")
def server(holding):
    """The portal with OAI pages of 2 records, on 127.0.0.1 (a free port)."""
    from werkzeug.serving import make_server

    from access.portal import create_app

    app = create_app(served_settings(holding.settings), {"OAI_PAGE_SIZE": PAGE})
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    thread.join(10)


@pytest.fixture(scope="module")
def schema():
    from access.oai_pmh import validator

    return validator()


def get(server: str, schema, **params) -> etree._Element:
    """One OAI-PMH answer, checked against the schema."""
    url = f"{server}/oai?{urllib.parse.urlencode(params, doseq=True)}"
    with urllib.request.urlopen(url, timeout=60) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/xml")
        doc = etree.fromstring(answer.read())
    schema.assertValid(doc)
    return doc


def error_code(doc: etree._Element) -> str | None:
    error = doc.find(f"{OAI}error")
    return None if error is None else error.get("code")


def anonymous_search_ids(server: str, holding) -> set[str]:
    """Every (AIP, item) the portal's anonymous search finds, over HTTP (the JSON API),
    one level filter at a time."""
    import json

    from sqlalchemy import select

    from storage.catalogue import Catalogue
    from storage.catalogue import models as m

    catalogue = Catalogue.open(holding.settings)
    with catalogue.session() as s:
        levels = set(s.scalars(select(m.Item.level).distinct()))
    found: set[str] = set()
    for level in levels:
        page = 1
        while True:
            query = urllib.parse.urlencode({"level": level, "per_page": 100, "page": page})
            with urllib.request.urlopen(f"{server}/api/v1/search?{query}", timeout=60) as a:
                body = json.loads(a.read())
            found |= {f"{h['aip_uuid']}/{h['item_key']}" for h in body["hits"]}
            if page * 100 >= body["total"]:
                break
            page += 1
    return found


def local_id(identifier: str) -> str:
    assert identifier.startswith("oai:dangan:"), identifier
    return identifier[len("oai:dangan:"):]


def test_identify_and_formats(server, schema):
    doc = get(server, schema, verb="Identify")
    identify = doc.find(f"{OAI}Identify")
    assert identify.findtext(f"{OAI}protocolVersion") == "2.0"
    assert identify.findtext(f"{OAI}deletedRecord") == "persistent"
    assert identify.findtext(f"{OAI}granularity") == "YYYY-MM-DDThh:mm:ssZ"
    assert identify.findtext(f"{OAI}baseURL") == "https://dangan.example.gov.cn/oai"
    doc = get(server, schema, verb="ListMetadataFormats")
    prefixes = [e.text for e in doc.iter(f"{OAI}metadataPrefix")]
    assert prefixes == ["oai_dc", "dangan"]
    with urllib.request.urlopen(f"{server}/oai/dangan.xsd", timeout=30) as answer:
        etree.XMLSchema(etree.fromstring(answer.read()))


def test_full_harvest_with_resumption_equals_anonymous_search(server, holding, schema):
    from sickle import Sickle

    sickle = Sickle(f"{server}/oai", max_retries=0, timeout=60)
    records = list(sickle.ListRecords(metadataPrefix="oai_dc"))
    harvested = [local_id(r.header.identifier) for r in records if not r.header.deleted]
    assert len(harvested) == len(set(harvested))
    assert len(harvested) > PAGE, "the harvest must have needed resumption"
    assert set(harvested) == anonymous_search_ids(server, holding)
    # every tier: the county documents (content) and the opened household (masked) are
    # there, the restricted household file is not, not even as a listing
    aips = {h.split("/")[0] for h in harvested}
    assert holding.general in aips and holding.opened in aips
    assert holding.restricted not in aips
    headers = [local_id(h.identifier) for h in sickle.ListIdentifiers(metadataPrefix="dangan")]
    assert headers == harvested
    # the pages themselves validate, tokens included
    doc = get(server, schema, verb="ListIdentifiers", metadataPrefix="oai_dc")
    token = doc.find(f"{OAI}ListIdentifiers/{OAI}resumptionToken")
    assert token is not None and token.text and token.get("cursor") == "0"
    assert int(token.get("completeListSize")) == len(harvested)
    doc = get(server, schema, verb="ListIdentifiers", resumptionToken=token.text)
    assert doc.find(f"{OAI}ListIdentifiers/{OAI}resumptionToken").get("cursor") == str(PAGE)


def test_records_are_de_identified(server, holding, schema):
    from sickle import Sickle

    sickle = Sickle(f"{server}/oai", max_retries=0, timeout=60)
    raw = "".join(r.raw for r in sickle.ListRecords(metadataPrefix="dangan"))
    raw += "".join(r.raw for r in sickle.ListRecords(metadataPrefix="oai_dc"))
    for household in HOUSEHOLDS:
        assert household.head not in raw
        assert household.id_number not in raw
        assert household.phone not in raw
    # the opened household is there, de-identified (its head's name as ××)
    assert holding.opened in raw and "××贫困户申请书" in raw
    dc = [r for r in sickle.ListRecords(metadataPrefix="oai_dc")
          if local_id(r.header.identifier).startswith(holding.general)]
    meta = dc[0].metadata
    assert meta["language"] == ["zh"]
    assert meta["title"] and meta["creator"] and meta["date"] and meta["subject"]
    assert any(i.startswith("Q001-WS·2016") for i in meta["identifier"])   # the 档号
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", d) for d in meta["date"])


def test_get_record_and_restricted_records_do_not_exist(server, holding, schema):
    from sickle import Sickle

    sickle = Sickle(f"{server}/oai", max_retries=0, timeout=60)
    first = next(iter(sickle.ListIdentifiers(metadataPrefix="oai_dc"))).identifier
    doc = get(server, schema, verb="GetRecord", identifier=first, metadataPrefix="dangan")
    assert doc.find(f".//{OAI}record/{OAI}header/{OAI}identifier").text == first
    from sqlalchemy import select

    from storage.catalogue import Catalogue
    from storage.catalogue import models as m

    with Catalogue.open(holding.settings).session() as s:
        keys = list(s.scalars(select(m.Item.key).where(m.Item.aip_uuid == holding.restricted)))
    assert keys
    for key in keys:
        hidden = f"oai:dangan:{holding.restricted}/{key}"
        doc = get(server, schema, verb="GetRecord", identifier=hidden, metadataPrefix="oai_dc")
        assert error_code(doc) == "idDoesNotExist"
        doc = get(server, schema, verb="ListMetadataFormats", identifier=hidden)
        assert error_code(doc) == "idDoesNotExist"


def test_incremental_harvest_from_until(server, schema):
    from sickle import Sickle

    sickle = Sickle(f"{server}/oai", max_retries=0, timeout=60)
    headers = list(sickle.ListIdentifiers(metadataPrefix="oai_dc"))
    stamps = sorted({h.datestamp for h in headers})
    everything = {h.identifier for h in headers}
    later = datetime.now(timezone.utc) + timedelta(days=1)
    doc = get(server, schema, verb="ListIdentifiers", metadataPrefix="oai_dc",
              **{"from": later.strftime("%Y-%m-%dT%H:%M:%SZ")})
    assert error_code(doc) == "noRecordsMatch"
    # from the newest datestamp on: exactly the records stamped then
    newest = stamps[-1]
    since = {h.identifier for h in sickle.ListIdentifiers(metadataPrefix="oai_dc",
                                                          **{"from": newest})}
    assert since == {h.identifier for h in headers if h.datestamp >= newest}
    # until the oldest: only those; both halves together: everything
    oldest = stamps[0]
    until = {h.identifier for h in sickle.ListIdentifiers(metadataPrefix="oai_dc",
                                                          until=oldest)}
    assert until == {h.identifier for h in headers if h.datestamp <= oldest}
    # day granularity is accepted too
    day = newest[:10]
    by_day = {h.identifier for h in sickle.ListIdentifiers(metadataPrefix="oai_dc",
                                                           **{"from": day, "until": day})}
    assert by_day == {h.identifier for h in headers if h.datestamp[:10] == day}
    assert until | since <= everything


def test_set_harvest(server, holding, schema):
    from sickle import Sickle

    sickle = Sickle(f"{server}/oai", max_retries=0, timeout=60)
    specs = [s.setSpec for s in sickle.ListSets()]
    assert {"fonds", "category", "year"} <= set(specs)
    headers = list(sickle.ListIdentifiers(metadataPrefix="oai_dc"))
    assert all(h.setSpecs for h in headers)
    for spec in specs:
        members = {h.identifier for h in sickle.ListIdentifiers(metadataPrefix="oai_dc",
                                                                set=spec)}
        expected = {h.identifier for h in headers
                    if any(s == spec or s.startswith(spec + ":") for s in h.setSpecs)}
        assert members == expected and members, spec
    fonds = [s for s in specs if s.startswith("fonds:")]
    assert fonds and len({h.identifier for h in headers}) == sum(
        1 for h in headers if any(s in fonds for s in h.setSpecs))
    doc = get(server, schema, verb="ListIdentifiers", metadataPrefix="oai_dc", set="year:1900")
    assert error_code(doc) == "noRecordsMatch"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, "badVerb"),
        ({"verb": "Harvest"}, "badVerb"),
        ({"verb": ["Identify", "Identify"]}, "badVerb"),
        ({"verb": "Identify", "set": "x"}, "badArgument"),
        ({"verb": "ListRecords"}, "badArgument"),
        ({"verb": "GetRecord", "metadataPrefix": "oai_dc"}, "badArgument"),
        ({"verb": "ListRecords", "metadataPrefix": "oai_dc", "from": "2020-13-40"},
         "badArgument"),
        ({"verb": "ListRecords", "metadataPrefix": "oai_dc", "from": "2020-01-01",
          "until": "2021-01-01T00:00:00Z"}, "badArgument"),
        ({"verb": "ListRecords", "metadataPrefix": "oai_dc", "from": "2021-01-02",
          "until": "2021-01-01"}, "badArgument"),
        ({"verb": "ListRecords", "metadataPrefix": "oai_dc", "set": "bad set"}, "badArgument"),
        ({"verb": "ListRecords", "metadataPrefix": ["oai_dc", "dangan"]}, "badArgument"),
        ({"verb": "ListRecords", "metadataPrefix": "marc21"}, "cannotDisseminateFormat"),
        ({"verb": "GetRecord", "metadataPrefix": "mods", "identifier": "oai:dangan:x/y"},
         "cannotDisseminateFormat"),
        ({"verb": "GetRecord", "metadataPrefix": "oai_dc", "identifier": "oai:dangan:x/y"},
         "idDoesNotExist"),
        ({"verb": "ListRecords", "metadataPrefix": "oai_dc", "until": "1990-01-01"},
         "noRecordsMatch"),
        ({"verb": "ListRecords", "resumptionToken": "not-a-token"}, "badResumptionToken"),
        ({"verb": "ListRecords", "resumptionToken": "x", "metadataPrefix": "oai_dc"},
         "badArgument"),
        ({"verb": "ListSets", "resumptionToken": "x"}, "badResumptionToken"),
    ],
)
def test_errors(server, schema, params, code):
    doc = get(server, schema, **params)
    assert error_code(doc) == code
    request = doc.find(f"{OAI}request")
    if code in ("badVerb", "badArgument"):
        assert request.attrib == {}   # an illegal request's arguments are not echoed


def test_post_is_answered_like_get(server, schema):
    data = urllib.parse.urlencode({"verb": "Identify"}).encode()
    with urllib.request.urlopen(f"{server}/oai", data=data, timeout=30) as answer:
        doc = etree.fromstring(answer.read())
    schema.assertValid(doc)
    assert doc.find(f"{OAI}Identify") is not None


def _county_transfer(root, codes: list[str], year: str = "2016", retention: str = "永久"):
    """A transfer of county documents (no personal information), one PDF each."""
    import csv

    from holdings import HEADER, text_pdf

    folder = root / "综合"
    folder.mkdir(parents=True)
    rows = []
    for n, code in enumerate(codes, 1):
        text_pdf(folder / f"{code}.pdf", f"扶贫项目资金公示第{n}号", f"村级扶贫项目资金公示第{n}号。")
        row = dict.fromkeys(HEADER, "")
        row.update({"序号": str(n), "档号": code, "责任者": "大通县扶贫开发局",
                    "题名": f"扶贫项目资金公示第{n}号", "日期": f"{year}03{n:02d}", "密级": "公开",
                    "页数": "1", "保管期限": retention, "精准扶贫类别": "03", "全宗号": "Q001",
                    "年度": year, "文件组合类型": "单件", "计算机文件名": f"综合/{code}.pdf"})
        rows.append(row)
    with open(root / "归档文件目录.csv", "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.DictWriter(handle, HEADER)
        writer.writeheader()
        writer.writerows(rows)
    return root


def test_resumption_survives_ingest_and_withdrawal(home, tmp_path):
    """A harvest paused after its first page: meanwhile a record already sent is withdrawn
    (控制) and a new transfer is ingested. The token goes on from where it was: nothing
    skipped (an offset would have skipped the first record of page 2), the new records come
    last, nothing twice; the withdrawn record comes again, as deleted."""
    from datetime import date

    from sickle import Sickle
    from werkzeug.serving import make_server

    from access.portal import create_app
    from access.rules import Reader
    from access.services import AccessService
    from ingest.pipeline import ingest

    settings = home    # on PostgreSQL too when DANGAN_TEST_CATALOGUE=postgresql
    archivist = Reader("archivist", "fixture")

    def ingest_open(name: str, codes: list[str]) -> str:
        result = ingest(_county_transfer(tmp_path / name, codes), settings)
        assert result.status == "accepted", result.failures
        uuid = result.aips[0]["uuid"]
        AccessService(settings).record_decision(
            archivist, uuid, None, open_date=date(2020, 1, 1), control="开放",
            basis="县级公示材料，提前开放")
        return uuid

    first = ingest_open("a", [f"Q001-WS·2016-Y-FPB-01{n:02d}" for n in range(1, 6)])
    app = create_app(served_settings(settings), {"OAI_PAGE_SIZE": PAGE})
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        sickle = Sickle(f"http://127.0.0.1:{httpd.server_port}/oai", max_retries=0, timeout=60)
        headers = sickle.ListIdentifiers(metadataPrefix="oai_dc")
        page_one = [next(headers), next(headers)]       # the first answer, token in hand
        assert headers.resumption_token is not None and headers.resumption_token.token
        withdrawn = local_id(page_one[0].identifier).split("/")[1]
        AccessService(settings).record_decision(
            archivist, first, withdrawn, control="控制", basis="复查：含未公开信息")
        second = ingest_open("b", ["Q001-WS·2016-Y-FPB-0201", "Q001-WS·2016-Y-FPB-0202"])
        rest = list(headers)
        everything = list(sickle.ListIdentifiers(metadataPrefix="oai_dc"))
        record = sickle.GetRecord(identifier=page_one[0].identifier, metadataPrefix="oai_dc")
    finally:
        httpd.shutdown()
        thread.join(10)
    after = [local_id(h.identifier) for h in everything if not h.deleted]
    harvested = [local_id(h.identifier) for h in page_one + rest if not h.deleted]
    assert len(harvested) == len(set(harvested)), "a record was sent twice"
    assert len([h for h in harvested if h.startswith(first)]) == 5, "a record was skipped"
    assert [h.split("/")[0] for h in harvested[-2:]] == [second, second]
    assert f"{first}/{withdrawn}" not in after and len(after) == 6
    assert set(after) == set(harvested) - {f"{first}/{withdrawn}"}
    # the withdrawn record, harvested before, is announced as deleted: on the harvest that
    # went on (its datestamp is the withdrawal's, after the cursor), on a new one, by GetRecord
    assert [local_id(h.identifier) for h in rest if h.deleted] == [f"{first}/{withdrawn}"]
    assert [local_id(h.identifier) for h in everything if h.deleted] == [f"{first}/{withdrawn}"]
    assert record.header.deleted and not getattr(record, "metadata", None)
    deleted = next(h for h in everything if h.deleted)
    assert deleted.datestamp >= page_one[0].datestamp   # seconds: the same one, or later


def test_deleted_records_are_announced_only_if_they_were_public(home, tmp_path):
    """Two AIPs past their retention (定期10年, 2010) are deleted by appraisal decisions: the
    one that was open is announced as deleted (header status="deleted", no metadata, stamped
    with the deletion, in its sets, on an incremental harvest too); the one never open is
    not announced at all."""
    from datetime import date

    from sickle import Sickle
    from werkzeug.serving import make_server

    from access.portal import create_app
    from access.rules import Reader
    from access.services import AccessService
    from ingest.pipeline import ingest
    from storage.catalogue import Catalogue
    from storage.copies import Replicator

    settings = home
    archivist = Reader("archivist", "fixture")
    uuids = []
    for name, codes in (("open", ["Q001-WS·2010-D10-FPB-0001", "Q001-WS·2010-D10-FPB-0002"]),
                        ("closed", ["Q001-WS·2010-D10-FPB-0003"])):
        result = ingest(_county_transfer(tmp_path / name, codes, "2010", "定期10年"), settings)
        assert result.status == "accepted", result.failures
        uuids.append(result.aips[0]["uuid"])
    opened, closed = uuids
    AccessService(settings).record_decision(archivist, opened, None, open_date=date(2015, 1, 1),
                                            control="开放", basis="公示材料")
    app = create_app(served_settings(settings))
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{httpd.server_port}/oai"
        sickle = Sickle(base, max_retries=0, timeout=60)
        before = list(sickle.ListIdentifiers(metadataPrefix="oai_dc"))
        assert {local_id(h.identifier).split("/")[0] for h in before} == {opened}
        assert not any(h.deleted for h in before)
        since = max(h.datestamp for h in before)
        for uuid in (opened, closed):
            Replicator(settings, Catalogue.open(settings)).delete(uuid, "鉴定：保管期满，销毁")
        after = list(sickle.ListIdentifiers(metadataPrefix="oai_dc"))
        later = list(sickle.ListIdentifiers(metadataPrefix="oai_dc", **{"from": since}))
        in_set = list(sickle.ListIdentifiers(metadataPrefix="oai_dc", set="year:2010"))
        record = sickle.GetRecord(identifier=before[0].identifier, metadataPrefix="dangan")
        schema = __import__("access.oai_pmh", fromlist=["validator"]).validator()
        with urllib.request.urlopen(f"{base}?verb=ListRecords&metadataPrefix=dangan",
                                    timeout=60) as answer:
            doc = etree.fromstring(answer.read())
        schema.assertValid(doc)
    finally:
        httpd.shutdown()
        thread.join(10)
    assert {h.identifier for h in after} == {h.identifier for h in before}
    assert all(h.deleted for h in after)
    assert {h.identifier for h in later} == {h.identifier for h in before}
    assert {h.identifier for h in in_set} == {h.identifier for h in before}
    assert record.header.deleted and not getattr(record, "metadata", None)
    assert all(closed not in h.identifier for h in after)
    assert doc.findall(f".//{OAI}metadata") == []
    assert len(doc.findall(f".//{OAI}header[@status='deleted']")) == 2


def test_destroyed_aip_is_announced_as_deleted(home, cli, tmp_path, monkeypatch):
    """An open AIP harvested, then destroyed by an appraisal batch (propose → decide →
    submit → approve by another person → execute before a witness): its records are
    announced as deleted, stamped with the destruction, and nothing of them is served."""
    from datetime import date

    from sickle import Sickle
    from werkzeug.serving import make_server

    from access.portal import create_app
    from access.rules import Reader
    from access.services import AccessService
    from ingest.pipeline import ingest
    from storage.catalogue import Catalogue

    settings = home
    password = "oai-destroy-pw-2026"
    monkeypatch.setenv("DANGAN_PASSWORD", password)
    monkeypatch.setenv("DANGAN_WITNESS_PASSWORD", password)
    for user, role in (("li", "archivist"), ("wang", "admin"), ("zhao", "auditor")):
        assert cli("user", "add", user, "--role", role, "--password-env",
                   "DANGAN_PASSWORD").code == 0
    result = ingest(_county_transfer(tmp_path / "old", ["Q001-WS·2010-D10-FPB-0005",
                                                        "Q001-WS·2010-D10-FPB-0006"],
                                     "2010", "定期10年"), settings)
    assert result.status == "accepted", result.failures
    uuid = result.aips[0]["uuid"]
    AccessService(settings).record_decision(Reader("archivist", "fixture"), uuid, None,
                                            open_date=date(2015, 1, 1), control="开放",
                                            basis="公示材料")
    app = create_app(served_settings(settings))
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        sickle = Sickle(f"http://127.0.0.1:{httpd.server_port}/oai", max_retries=0, timeout=60)
        before = list(sickle.ListIdentifiers(metadataPrefix="oai_dc"))
        assert len(before) == 2 and not any(h.deleted for h in before)
        made = cli("appraisal", "propose", "--title", "到期鉴定", "--aip", uuid, "--as", "li",
                   "--json")
        assert made.code == 0, made.err
        batch = json.loads(made.out)["id"]
        assert cli("appraisal", "decide", batch, "--aip", uuid, "--decision", "destroy",
                   "--reason", "保管期限已满", "--as", "li").code == 0
        assert cli("appraisal", "submit", batch, "--as", "li").code == 0
        assert cli("appraisal", "approve", batch, "--as", "wang").code == 0
        done = cli("appraisal", "execute", batch, "--witness", "zhao", "--json")
        assert done.code == 0, done.err + done.out
        assert Catalogue.open(settings).get_aip(uuid).status == "DESTROYED"
        after = list(sickle.ListIdentifiers(metadataPrefix="oai_dc"))
        record = sickle.GetRecord(identifier=before[0].identifier, metadataPrefix="oai_dc")
    finally:
        httpd.shutdown()
        thread.join(10)
    assert {h.identifier for h in after} == {h.identifier for h in before}
    assert all(h.deleted for h in after)
    assert all(a.datestamp >= b.datestamp for a, b in zip(after, before))
    assert record.header.deleted and not getattr(record, "metadata", None)
