"""The portal serves the access copy by default: a Word file is read in the browser as the
PDF made at ingest; the original stays one click away; access rules are those of the record."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from ingest.pipeline import ingest
from policies import load_settings
from holdings import served_settings
from tests.ingest.normalise_inputs import office_transfer


@pytest.fixture
def portal_on_derivatives(home, tmp_path, monkeypatch):
    monkeypatch.setenv("DANGAN_NORMALISE_AT_INGEST", "true")
    monkeypatch.setenv("DANGAN_FULLTEXT_OCR", "false")
    settings = load_settings(home.home)
    result = ingest(office_transfer(tmp_path / "t"), settings)
    assert result.status == "accepted", result.failures
    from access.portal import create_app

    app = create_app(served_settings(settings), {"TESTING": True, "WTF_CSRF_ENABLED": False})
    return app, result.aips[0]["uuid"]


def test_the_record_page_previews_and_downloads_the_access_copy(portal_on_derivatives):
    app, uuid = portal_on_derivatives
    client = app.test_client()
    app.test_login(client, "archivist", username="archivist")
    page = client.get(f"/aip/{uuid}").get_data(as_text=True)
    source = "data/objects/户卷/001-申请书.docx"
    copy = "data/preservation/户卷/001-申请书.docx.pdf"
    assert f"/aip/{uuid}/preview/{quote(copy)}" in page           # preview: the PDF/A
    assert f"/aip/{uuid}/file/{quote(copy)}" in page               # download: the PDF/A
    assert f"/aip/{uuid}/file/{quote(source)}" in page             # the original, on request
    assert "保存版本" in page and "利用版本" in page                 # staff see the derivatives
    answer = client.get(f"/aip/{uuid}/file/{quote(copy)}?inline=1")
    assert answer.status_code == 200 and answer.mimetype == "application/pdf"
    assert answer.data.startswith(b"%PDF")
    preview = client.get(f"/aip/{uuid}/preview/{quote(copy)}")
    assert preview.status_code == 200
    original = client.get(f"/aip/{uuid}/file/{quote(source)}")
    assert original.status_code == 200 and original.data.startswith(b"PK")
    scan = "data/access/户卷/002-扫描件.tif.jpg"
    assert f"/aip/{uuid}/file/{quote(scan)}" in page


def test_each_derivative_is_listed_right_after_its_source(portal_on_derivatives):
    """By path an access copy (data/access/…) would sort before the logs and a preservation
    copy after every original: the page puts each under the file it was made from."""
    import re

    app, uuid = portal_on_derivatives
    client = app.test_client()
    app.test_login(client, "archivist", username="archivist")
    page = client.get(f"/aip/{uuid}").get_data(as_text=True)
    rows = re.findall(r'<tr( class="derivative")?><td>(?:└ \S+ )?([^<]+)</td>', page)
    listed = [(bool(derivative), path.strip()) for derivative, path in rows]
    derivatives = [(i, path) for i, (derivative, path) in enumerate(listed) if derivative]
    assert len(derivatives) >= 2, listed
    for i, path in derivatives:
        source = path.replace("data/preservation/", "data/objects/", 1) \
                     .replace("data/access/", "data/objects/", 1).rsplit(".", 1)[0]
        before = [p for d, p in listed[:i] if not d]
        assert before and before[-1] == source, (path, before[-1:])


def test_access_rules_are_the_records_own(portal_on_derivatives):
    """The household volume is restricted (限制): an anonymous reader gets neither the
    original nor its copy."""
    app, uuid = portal_on_derivatives
    client = app.test_client()
    copy = "data/preservation/户卷/001-申请书.docx.pdf"
    source = "data/objects/户卷/001-申请书.docx"
    assert client.get(f"/aip/{uuid}/file/{quote(source)}").status_code in (403, 404)
    assert client.get(f"/aip/{uuid}/file/{quote(copy)}").status_code in (403, 404)


def test_the_iiif_manifest_shows_the_master_not_its_access_copy(portal_on_derivatives):
    app, uuid = portal_on_derivatives
    client = app.test_client()
    app.test_login(client, "archivist", username="archivist")
    answer = client.get(f"/iiif/{uuid}/manifest")
    assert answer.status_code == 200
    manifest = json.loads(answer.data)
    canvases = manifest["items"]
    assert len(canvases) == 1                       # the TIFF, not also its JPEG copy
    assert "data/access" not in json.dumps(manifest, ensure_ascii=False)
