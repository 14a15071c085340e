"""The first portal: search with highlights, AIP page, verified downloads, ranges, zip."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "ingest"))
from transfers import small_transfer  # noqa: E402

from access.portal import create_app  # noqa: E402


@pytest.fixture
def ingested(home, cli, tmp_path):
    transfer = small_transfer(tmp_path / "t", rows=3)
    result = cli("ingest", transfer, "--json")
    assert result.code == 0, result.err
    return transfer, json.loads(result.out)["aips"][0]["uuid"]


@pytest.fixture
def client(home, ingested):
    app = create_app(home, {"TESTING": True})
    return app.test_client()


def login_if_needed(client):
    """Portals with accounts let an admin in; the plain portal needs nothing."""
    hook = getattr(client.application, "test_login", None)
    if hook:
        hook(client, "admin")


def test_search_page_highlights_two_character_words(client, ingested):
    login_if_needed(client)
    page = client.get("/search", query_string={"q": "因病"})
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "<mark>因病</mark>" in body
    assert ingested[1] in body


def test_aip_page_lists_files_digests_and_events(client, ingested):
    login_if_needed(client)
    transfer, uuid = ingested
    body = client.get(f"/aip/{uuid}").get_data(as_text=True)
    digest = hashlib.sha256((transfer / "户卷/001-申请书.txt").read_bytes()).hexdigest()
    assert digest in body and "ingestion" in body and "message digest calculation" in body


def test_file_download_equals_original_and_supports_ranges(client, ingested):
    login_if_needed(client)
    transfer, uuid = ingested
    original = (transfer / "户卷/003-申请书.txt").read_bytes()
    url = f"/aip/{uuid}/file/data/objects/户卷/003-申请书.txt"
    whole = client.get(url)
    assert whole.status_code == 200 and whole.data == original
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert whole.headers["Content-Type"].startswith("text/plain")
    part = client.get(url, headers={"Range": "bytes=5-20"})
    assert part.status_code == 206 and part.data == original[5:21]
    assert part.headers["Content-Range"] == f"bytes 5-20/{len(original)}"
    tail = client.get(url, headers={"Range": "bytes=-7"})
    assert tail.status_code == 206 and tail.data == original[-7:]
    beyond = client.get(url, headers={"Range": f"bytes={len(original) + 10}-"})
    assert beyond.status_code == 416
    assert client.get(f"/aip/{uuid}/file/data/objects/nope.txt").status_code == 404


DAMAGED = "data/objects/户卷/001-申请书.txt"
INTACT = "data/objects/户卷/002-申请书.txt"


def _damage(home, uuid: str, path: str = DAMAGED) -> None:
    """Change one byte of one file of the only copy."""
    stored = home.home / "aips" / uuid / path
    data = bytearray(stored.read_bytes())
    data[0] ^= 0xFF
    stored.write_bytes(bytes(data))


def _entries(home, action: str) -> list:
    from sqlalchemy import select

    from storage.catalogue.database import Catalogue
    from storage.catalogue.models import AuditEntry

    with Catalogue.open(home).session() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_a_damaged_file_is_refused_with_a_page_and_recorded(client, home, ingested):
    login_if_needed(client)
    transfer, uuid = ingested
    _damage(home, uuid)
    refused = client.get(f"/aip/{uuid}/file/{DAMAGED}")
    assert refused.status_code == 409
    page = refused.get_data(as_text=True)
    assert "文件已损坏" in page and DAMAGED in page and "审计员" in page
    assert f"/aip/{uuid}" in page                           # back to the record
    assert "Traceback" not in page and str(home.home) not in page
    assert [e.detail["path"] for e in _entries(home, "retrieval-failed")] == [DAMAGED]
    # the other files of the AIP are served as ever, ranges too
    intact = client.get(f"/aip/{uuid}/file/{INTACT}")
    assert intact.status_code == 200
    assert intact.data == (transfer / "户卷/002-申请书.txt").read_bytes()
    assert client.get(f"/aip/{uuid}/file/{INTACT}", headers={"Range": "bytes=0-3"}
                      ).status_code == 206
    # now known damaged: refused without reading again (nothing new recorded), ranges too
    assert client.get(f"/aip/{uuid}/file/{DAMAGED}", headers={"Range": "bytes=0-3"}
                      ).status_code == 409
    api = client.get(f"/api/v1/aips/{uuid}/files/{DAMAGED}")
    assert api.status_code == 409 and api.get_json()["damaged"]["path"] == DAMAGED
    assert len(_entries(home, "retrieval-failed")) == 1
    shown = client.get(f"/aip/{uuid}").get_data(as_text=True)
    assert "已损坏，待修复" in shown


def test_after_an_audit_marks_the_copy_damaged_its_intact_files_still_serve(
        client, cli, home, ingested, tmp_path):
    """An audit marks the only copy ``damaged``: every other file, the DIP and ``dangan get``
    of them keep working; only the damaged file is refused, named in the zip."""
    login_if_needed(client)
    transfer, uuid = ingested
    _damage(home, uuid)
    assert cli("audit", "--aip", uuid).code == 1
    from storage.catalogue.database import Catalogue

    assert [c.status for c in Catalogue.open(home).copies_of(uuid)] == ["damaged"]
    intact = client.get(f"/aip/{uuid}/file/{INTACT}")
    assert intact.status_code == 200
    assert intact.data == (transfer / "户卷/002-申请书.txt").read_bytes()
    refused = client.get(f"/aip/{uuid}/file/{DAMAGED}")
    assert refused.status_code == 409 and "待下一次固定性审计" not in refused.get_data(
        as_text=True
    )  # the audit found no intact copy to repair from: the page says so
    assert "没有完好的副本" in refused.get_data(as_text=True)
    assert _entries(home, "retrieval-failed") == []        # the audit's finding sufficed
    response = client.get(f"/aip/{uuid}.zip")
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(response.get_data()))
    names = archive.namelist()
    assert f"{uuid}/{DAMAGED}" not in names and f"{uuid}/{INTACT}" in names
    note = archive.read(f"{uuid}/OMITTED.txt").decode("utf-8")
    assert DAMAGED in note and "known damaged" in note
    assert archive.read(f"{uuid}/{INTACT}") == (transfer / "户卷/002-申请书.txt").read_bytes()
    out = tmp_path / "intact.txt"
    assert cli("get", uuid, "户卷/002-申请书.txt", "-o", out).code == 0
    bad = cli("get", uuid, "户卷/001-申请书.txt", "-o", tmp_path / "bad.txt")
    assert bad.code == 1 and "no copy could be read intact" in bad.err


def test_a_view_dip_leaves_a_damaged_file_out_of_its_manifest(home, ingested, tmp_path):
    import bagit

    from access.dip import stream_view_dip
    from access.services import AccessService

    _, uuid = ingested
    _damage(home, uuid)
    service = AccessService(home)
    refs = [service.retriever.file(uuid, p) for p in (DAMAGED, INTACT)]
    body = b"".join(stream_view_dip(service.retriever, refs, {"uuid": uuid}, "dip"))
    archive = zipfile.ZipFile(io.BytesIO(body))
    archive.extractall(tmp_path)
    bagit.Bag(str(tmp_path / "dip")).validate()              # complete without the file
    assert not (tmp_path / "dip" / DAMAGED).exists()
    assert DAMAGED in (tmp_path / "dip" / "OMITTED.txt").read_text(encoding="utf-8")
    record = json.loads((tmp_path / "dip/data/metadata/record.json").read_text("utf-8"))
    assert record["omitted"] == [DAMAGED]


def test_whole_aip_zip_is_a_valid_bag_with_original_bytes(client, home, ingested, tmp_path):
    login_if_needed(client)
    transfer, uuid = ingested
    response = client.get(f"/aip/{uuid}.zip")
    assert response.status_code == 200 and response.is_streamed
    archive = zipfile.ZipFile(io.BytesIO(response.get_data()))
    assert archive.testzip() is None
    names = archive.namelist()
    assert f"{uuid}/bagit.txt" in names and f"{uuid}/data/metadata/mets.xml" in names
    assert archive.read(f"{uuid}/data/objects/户卷/002-申请书.txt") == \
        (transfer / "户卷/002-申请书.txt").read_bytes()
    import bagit

    archive.extractall(tmp_path / "dip")
    bagit.Bag(str(tmp_path / "dip" / uuid)).validate()


def test_cli_get_verifies_and_refuses_a_damaged_copy(cli, home, ingested, tmp_path):
    transfer, uuid = ingested
    out = tmp_path / "out.txt"
    assert cli("get", uuid, "户卷/002-申请书.txt", "-o", out).code == 0
    assert out.read_bytes() == (transfer / "户卷/002-申请书.txt").read_bytes()
    whole = tmp_path / "whole"
    assert cli("get", uuid, "-o", whole).code == 0
    import bagit

    bagit.Bag(str(whole)).validate()
    stored = home.home / "aips" / uuid / "data/objects/户卷/002-申请书.txt"
    stored.write_bytes(stored.read_bytes()[:-1])
    bad = tmp_path / "bad.txt"
    result = cli("get", uuid, "户卷/002-申请书.txt", "-o", bad)
    assert result.code == 1 and "no copy could be read intact" in result.err
    assert not bad.exists()


def test_cli_search_and_show(cli, ingested):
    _, uuid = ingested
    result = cli("search", "因学", "--json")
    hits = json.loads(result.out)["hits"]
    assert result.code == 0 and hits and hits[0]["aip"] == uuid
    shown = json.loads(cli("show", uuid[:8], "--json").out)
    assert shown["uuid"] == uuid
    assert shown["copies"][0]["files"]["bagit.txt"].startswith("file://")
    assert cli("show", "00000000-0000").code == 2
