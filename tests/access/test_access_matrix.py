"""Who may see what: every route × every role, search counts and facets, and that nothing a
researcher or an anonymous visitor receives (page, API answer, download, DIP) holds an ID
number, a household head's name, a health detail or a phone number."""

from __future__ import annotations

import io
import json
import zipfile
from urllib.parse import quote

import pytest
from holdings import HOUSEHOLDS, SECRETS, ocr_unavailable

ROLES = ("admin", "archivist", "auditor", "researcher", "public")
PDF = "data/objects/{code}/001-贫困户申请书.pdf"
GENERAL_PDF = "data/objects/综合/Q001-WS·2016-Y-FPB-0001.pdf"

#: route -> expected status per role (admin, archivist, auditor, researcher, public)
MATRIX = [
    ("/", (200, 200, 200, 200, 200)),
    ("/search?q=因病", (200, 200, 200, 200, 200)),
    ("/search?q=马文明", (200, 200, 200, 200, 200)),
    ("/aip/{general}", (200, 200, 200, 200, 200)),
    ("/aip/{restricted}", (200, 200, 200, 200, 404)),
    ("/aip/{opened}", (200, 200, 200, 200, 200)),
    ("/aip/{restricted}/item/item-001", (200, 200, 200, 200, 404)),
    ("/household/{restricted}", (200, 200, 200, 200, 404)),
    ("/household/{opened}", (200, 200, 200, 200, 200)),
    ("/aip/{general}/file/" + GENERAL_PDF, (200, 200, 200, 200, 200)),
    ("/aip/{general}/preview/" + GENERAL_PDF, (200, 200, 200, 200, 200)),
    ("/aip/{restricted}/file/{restricted_pdf}", (200, 200, 403, 403, 404)),
    ("/aip/{restricted}/file/{restricted_pdf}?inline=1", (200, 200, 403, 403, 404)),
    ("/aip/{opened}/file/{opened_pdf}", (200, 200, 403, 403, 403)),
    ("/aip/{restricted}/file/data/metadata/mets.xml", (200, 200, 403, 404, 404)),
    ("/aip/{general}.zip", (200, 200, 200, 200, 200)),
    ("/aip/{restricted}.zip", (200, 200, 403, 403, 404)),
    ("/aip/{opened}.zip", (200, 200, 403, 403, 403)),
    ("/requests", (200, 200, 200, 200, 302)),
    ("/dashboard", (200, 200, 200, 200, 302)),
    ("/labels", (200, 200, 403, 403, 302)),
    ("/admin/users", (200, 403, 403, 403, 302)),
    ("/account", (200, 200, 200, 200, 302)),
    ("/api/v1/me", (200, 200, 200, 200, 200)),
    ("/api/v1/search?q=因病", (200, 200, 200, 200, 200)),
    ("/api/v1/aips/{general}", (200, 200, 200, 200, 200)),
    ("/api/v1/aips/{restricted}", (200, 200, 200, 200, 404)),
    ("/api/v1/aips/{opened}", (200, 200, 200, 200, 200)),
    ("/api/v1/aips/{restricted}/items/item-001", (200, 200, 200, 200, 404)),
    ("/api/v1/households/{opened}", (200, 200, 200, 200, 200)),
    ("/api/v1/aips/{restricted}/files/{restricted_pdf}", (200, 200, 403, 403, 404)),
    ("/api/v1/aips/{opened}/dip", (200, 200, 403, 403, 403)),
    ("/api/v1/aips/{general}/dip", (200, 200, 200, 200, 200)),
    ("/api/v1/requests", (200, 200, 200, 200, 401)),
    ("/api/v1/dashboard", (200, 200, 200, 200, 401)),
    ("/api/v1/openapi.json", (200, 200, 200, 200, 200)),
]


def _url(template: str, holding) -> str:
    return template.format(
        general=holding.general,
        restricted=holding.restricted,
        opened=holding.opened,
        restricted_pdf=PDF.format(code=HOUSEHOLDS[0].code),
        opened_pdf=PDF.format(code=HOUSEHOLDS[1].code),
    )


def _texts(response) -> list[str]:
    """Everything a response carries, as text (zip members unpacked)."""
    data = response.get_data()
    if data[:2] == b"PK":
        archive = zipfile.ZipFile(io.BytesIO(data))
        return [n for n in archive.namelist()] + [
            archive.read(n).decode("utf-8", "replace") for n in archive.namelist()
        ]
    if data[:4] == b"%PDF":
        from pdfminer.high_level import extract_text

        return [extract_text(io.BytesIO(data))]
    return [data.decode("utf-8", "replace")]


@pytest.mark.parametrize("template,expected", MATRIX, ids=[m[0] for m in MATRIX])
def test_route_by_role(client_for, holding, template, expected):
    url = _url(template, holding)
    for role, status in zip(ROLES, expected):
        response = client_for(role).get(url)
        response.get_data()  # a streamed answer is read to its end
        response.close()
        assert response.status_code == status, (role, url, response.status_code)
        if role in ("researcher", "public", "auditor"):
            body = "\n".join(_texts(response))
            if "?q=" in url:  # the reader's own query, echoed back, is not a leak
                body = body.replace(url.split("?q=", 1)[1], "")
            leaked = [s for s in SECRETS if s in body]
            assert not leaked, (role, url, leaked)
            assert (
                "openapi" in url
                or "poverty_causes" not in body
                and "致贫原因" not in body.replace("因病致贫家庭医疗救助", "")
            ), (role, url)


def _search(client, q, **filters):
    response = client.get("/api/v1/search", query_string={"q": q, "per_page": 100, **filters})
    assert response.status_code == 200
    return response.get_json()


@pytest.mark.parametrize(
    "word",
    [
        HOUSEHOLDS[0].head,
        HOUSEHOLDS[1].head,
        HOUSEHOLDS[0].disease,
        HOUSEHOLDS[0].id_number,
        HOUSEHOLDS[0].phone,
    ],
)
def test_personal_words_find_nothing_for_researchers(client_for, word):
    staff = _search(client_for("archivist"), word)
    if word not in (HOUSEHOLDS[0].id_number, HOUSEHOLDS[0].phone):
        assert staff["total"] >= 1, word  # the words are there ...
    for role in ("researcher", "public", "auditor"):
        found = _search(client_for(role), word)
        assert found["total"] == 0 and not found["hits"], (role, word)  # ... but not for them
        assert all(n == 0 for values in found["facets"].values() for _, n in values)


def test_id_numbers_are_never_indexed_as_words(client_for):
    """Even staff cannot find an ID number as text (only masked forms are indexed)."""
    assert _search(client_for("admin"), HOUSEHOLDS[0].id_number)["total"] == 0


def test_counts_and_facets_cover_only_what_the_reader_may_see(client_for):
    staff = _search(client_for("archivist"), "贫困户")
    researcher = _search(client_for("researcher"), "贫困户")
    public = _search(client_for("public"), "贫困户")
    assert staff["total"] > researcher["total"] >= public["total"]
    assert researcher["total"] == len(researcher["hits"])
    for result in (researcher, public):
        assert set(result["facets"]) <= {
            "category",
            "year",
            "retention",
            "level",
            "formats",
            "county",
            "township",
        }
        category_total = sum(n for _, n in result["facets"].get("category", []))
        assert category_total == result["total"]
        for hit in result["hits"]:
            assert hit["view"] in ("content", "masked", "listed")
            assert not any(s in json.dumps(hit, ensure_ascii=False) for s in SECRETS)
    assert "poverty_causes" in staff["facets"]
    # the anonymous public never learns of restricted records at all
    assert all(h["view"] != "listed" for h in public["hits"])


def test_facet_filter_narrows_and_stays_consistent(client_for):
    client = client_for("researcher")
    everything = _search(client, "扶贫")
    assert everything["total"] > 0
    category, count = everything["facets"]["category"][0]
    narrowed = _search(client, "扶贫", category=category)
    assert narrowed["total"] == count
    assert _search(client, "扶贫", poverty_causes="因病")["total"] == 0


def _found_with_snippet(client, word: str) -> None:
    result = _search(client, word)
    assert result["total"] >= 1, word
    assert any(f"<mark>{word}</mark>" in h["snippet"] for h in result["hits"]), word


def test_full_text_of_pdf_and_docx_is_found(client_for):
    for word in ("光伏", "安置点"):
        _found_with_snippet(client_for("public"), word)


@pytest.mark.skipif(bool(ocr_unavailable(scanned_pdf=True)),
                    reason=ocr_unavailable(scanned_pdf=True) or "")
def test_full_text_of_an_ocr_scan_is_found(client_for):
    _found_with_snippet(client_for("public"), "分红")


def test_snippets_for_staff_mask_id_numbers(client_for):
    result = _search(client_for("archivist"), "公民身份号码")
    assert result["total"] >= 2
    body = json.dumps(result, ensure_ascii=False)
    assert not any(h.id_number in body for h in HOUSEHOLDS)
    assert HOUSEHOLDS[0].id_number[:6] + "********" + HOUSEHOLDS[0].id_number[-4:] in body


def test_restricted_listing_shows_deidentified_title_and_code(client_for, holding):
    view = client_for("researcher").get(f"/api/v1/aips/{holding.restricted}").get_json()
    assert view["view"] == "listed" and view["can_request"] and view["files"] == []
    item = next(i for i in view["items"] if i["key"] == "item-001")
    assert item["title"] == "××贫困户申请书"
    assert item["archival_code"] == f"{HOUSEHOLDS[0].code}-001"
    assert set(item["fields"]) <= {
        "archival_code",
        "title",
        "year",
        "date",
        "retention_period",
        "jzfp_category",
        "fonds_code",
        "aggregation_level",
        "page_count",
        "security_class",
        "language",
        "category_code",
        "document_no",
        "doc_type",
    }
    assert "events" not in view and "copies" not in view


def test_staff_see_everything_but_masked_id_numbers(client_for, holding):
    view = client_for("archivist").get(f"/api/v1/aips/{holding.restricted}").get_json()
    item = next(i for i in view["items"] if i["key"] == "item-001")
    assert item["fields"]["head_name"] == HOUSEHOLDS[0].head
    shown = item["fields"].get("head_id_number")
    assert shown and HOUSEHOLDS[0].id_number not in json.dumps(view, ensure_ascii=False)
    assert view["events"] and view["copies"] and view["view"] == "content"


def test_auditor_sees_events_and_digests_without_content(client_for, holding):
    view = client_for("auditor").get(f"/api/v1/aips/{holding.restricted}").get_json()
    assert view["events"] and view["copies"]
    assert view["files"] and all(not f["download"] for f in view["files"])
    assert all(f["sha256"] for f in view["files"])


def test_every_access_to_restricted_material_is_audited(client_for, holding):
    from storage.catalogue.database import Catalogue
    from storage.catalogue.models import AuditEntry
    from sqlalchemy import select

    client = client_for("archivist")
    url = f"/aip/{holding.restricted}/file/" + quote(PDF.format(code=HOUSEHOLDS[0].code))
    for target in (url, f"/household/{holding.restricted}", f"/aip/{holding.restricted}.zip"):
        response = client.get(target)
        response.get_data()
        response.close()
        assert response.status_code == 200, target
    catalogue = Catalogue.open(holding.settings)
    with catalogue.session() as s:
        actions = {
            (e.actor, e.action, e.object.split("/")[0])
            for e in s.scalars(select(AuditEntry).where(AuditEntry.actor == "archivist"))
        }
    for action in ("download-restricted", "view-restricted", "dip-restricted"):
        assert ("archivist", action, holding.restricted) in actions, action
    with catalogue.session() as s:
        opened_reads = s.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "download-restricted",
                AuditEntry.object.like(f"{holding.general}%"),
            )
        ).all()
    assert not opened_reads  # reading open records is not an access to restricted material


def test_dip_holds_only_what_the_reader_may_see(client_for, holding):
    staff = zipfile.ZipFile(
        io.BytesIO(client_for("admin").get(f"/aip/{holding.general}.zip").get_data())
    )
    public = zipfile.ZipFile(
        io.BytesIO(client_for("public").get(f"/aip/{holding.general}.zip").get_data())
    )
    assert any(n.endswith("data/metadata/mets.xml") for n in staff.namelist())
    names = public.namelist()
    assert not any("mets.xml" in n or "ingest-report" in n for n in names)
    assert any(n.endswith(GENERAL_PDF) for n in names)
    assert any(n.endswith("data/metadata/record.json") for n in names)
    import hashlib

    manifest = public.read(next(n for n in names if n.endswith("manifest-sha256.txt"))).decode()
    prefix = names[0].split("/")[0]
    for line in manifest.splitlines():
        digest, path = line.split("  ", 1)
        assert hashlib.sha256(public.read(f"{prefix}/{path}")).hexdigest() == digest


def test_staff_searches_showing_restricted_records_are_audited(holding):
    """The engine's own reading of the page and the catalogue's agree on what to audit."""
    import dataclasses

    from sqlalchemy import select

    from access.rules import Reader
    from access.services import AccessService
    from storage.catalogue.models import AuditEntry

    service = AccessService(holding.settings)
    archivist = Reader("archivist", "auditing-archivist")

    def entries(query: str) -> list[dict]:
        keyed = service.vault.text_hash(query)
        with service.catalogue.session() as s:
            rows = s.scalars(select(AuditEntry).where(
                AuditEntry.actor == "auditing-archivist",
                AuditEntry.action == "search-restricted").order_by(AuditEntry.seq))
            return [e.detail for e in rows if e.detail.get("query_hmac") == keyed]

    head = HOUSEHOLDS[0].head
    result = service.search(archivist, head)
    assert any(h.aip_uuid == holding.restricted for h in result.hits)
    logged = entries(head)
    assert len(logged) == 1
    assert any(hit.startswith(f"{holding.restricted}/") for hit in logged[0]["hits"])
    service._audit_hits(archivist, head, dataclasses.replace(result, restricted=None))
    assert entries(head)[1]["hits"] == logged[0]["hits"]

    opened = service.search(archivist, "光伏")      # only the county document, opened early
    assert opened.hits and all(h.aip_uuid == holding.general for h in opened.hits)
    assert entries("光伏") == []


def test_audited_staff_searches_keep_no_id_number_or_name(holding):
    """The audit log cannot be erased: a staff search is kept masked, with a keyed hash that
    finds equal searches again (and cannot be joined to the catalogue's ID-number hashes)."""
    from sqlalchemy import select

    from access.rules import Reader
    from access.services import AccessService
    from storage.catalogue.models import AuditEntry
    from storage.catalogue.pii import PiiValue

    service = AccessService(holding.settings)
    archivist = Reader("archivist", "searching-archivist")
    household = HOUSEHOLDS[0]
    # full ID numbers are not searchable text, but a query may still carry one
    with_number = f"{household.head} -{household.id_number}"
    other = f"{household.head} -110101199003071234"    # someone else's number
    queries = (with_number, household.head, f"{household.head} 申请书", with_number, other)
    for query in queries:
        result = service.search(archivist, query)
        assert any(h.aip_uuid == holding.restricted for h in result.hits), query
    with service.catalogue.session() as s:
        logged = list(s.scalars(select(AuditEntry).where(
            AuditEntry.actor == "searching-archivist").order_by(AuditEntry.seq)))
        lookups = set(s.scalars(select(PiiValue.lookup)))
    assert len(logged) == 5
    text = " ".join(f"{e.object} {e.detail}" for e in logged)
    assert household.id_number not in text and household.head not in text
    assert "110101199003071234" not in text
    assert logged[0].object == "×× -××"     # the number masked, then the record's own value
    assert logged[1].object == "××" and logged[2].object == "×× 申请书"
    assert logged[4].object == "×× -110101********1234"
    hashes = [e.detail["query_hmac"] for e in logged]
    assert hashes[0] == hashes[3] and len(set(hashes)) == 4
    assert not set(hashes) & lookups


def test_cli_finds_audited_searches_by_their_text(holding, cli):
    import json

    from access.rules import Reader
    from access.services import AccessService

    service = AccessService(holding.settings)
    head = HOUSEHOLDS[0].head          # a restricted household: its searches are audited
    service.search(Reader("archivist", "cli-searcher"), f"{head}  ")
    result = cli("--home", holding.settings.home, "access", "searched", head, "--json")
    assert result.code == 0, result.err
    found = json.loads(result.out)["entries"]
    assert any(e["actor"] == "cli-searcher" and head not in e["query"] for e in found)
    assert cli("--home", holding.settings.home, "access", "searched", "从未检索过的词").code == 1
