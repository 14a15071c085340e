"""QR labels: opaque tokens, printable sheets (HTML and PDF), boxes, and the scanned
address that opens a record only after the viewer's own login."""

from __future__ import annotations

import io
import re

from holdings import HOUSEHOLDS, SECRETS


def test_label_sheet_pdf_and_page_carry_only_opaque_tokens(client_for, holding, artifacts):
    from pdfminer.high_level import extract_text

    archivist = client_for("archivist")
    page = archivist.get(
        "/labels/sheet", query_string={"aip": [holding.restricted, holding.opened]}
    )
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert html.count("<svg") >= 2 and HOUSEHOLDS[0].code in html
    tokens = set(re.findall(r"/q/([A-Za-z0-9_-]+)", html))
    pdf = archivist.get(
        "/labels/sheet.pdf", query_string={"aip": [holding.restricted, holding.opened]}
    )
    assert pdf.status_code == 200 and pdf.data[:4] == b"%PDF"
    (artifacts / "qr-labels.pdf").write_bytes(pdf.data)
    text = extract_text(io.BytesIO(pdf.data)).replace("\n", "")
    assert HOUSEHOLDS[0].code in text
    assert not [s for s in SECRETS if s in text or s in html]
    from access.labels import resolve
    from storage.catalogue import Catalogue

    catalogue = Catalogue.open(holding.settings)
    found = {resolve(catalogue, t) for t in tokens}
    assert found == {("volume", holding.restricted), ("volume", holding.opened)}
    assert all(len(t) == 24 for t in tokens)


def test_scanning_requires_login_then_opens_the_household(client_for, holding):
    from access.labels import token_for
    from storage.catalogue import Catalogue

    token = token_for(Catalogue.open(holding.settings), "volume", holding.restricted, "test")
    anonymous = client_for("public").get(f"/q/{token}")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    scanned = client_for("researcher").get(f"/q/{token}")
    assert scanned.status_code == 302
    assert scanned.headers["Location"].endswith(f"/household/{holding.restricted}")
    assert client_for("researcher").get("/q/not-a-real-token").status_code == 404
    api = client_for("researcher").get(f"/api/v1/labels/{token}").get_json()
    assert api["kind"] == "volume"


def test_box_of_volumes_and_its_label(client_for, holding):
    archivist = client_for("archivist")
    response = archivist.post(
        "/labels/box",
        data={"aip": [holding.restricted, holding.opened], "code": "Q001-JF·02·6301211002-盒01"},
    )
    assert response.status_code == 302
    sheet = archivist.get(response.headers["Location"])
    assert sheet.status_code == 200
    token = re.search(r"/q/([A-Za-z0-9_-]+)", sheet.get_data(as_text=True)).group(1)
    opened = client_for("public").get(f"/q/{token}")
    assert "/login" in opened.headers["Location"]
    box = client_for("researcher").get(
        client_for("researcher").get(f"/q/{token}").headers["Location"]
    )
    body = box.get_data(as_text=True)
    assert box.status_code == 200 and HOUSEHOLDS[0].code in body
    assert not [s for s in SECRETS if s in body]
    assert client_for("researcher").get("/labels").status_code == 403


def test_cli_labels(cli, holding, tmp_path, monkeypatch):
    monkeypatch.setenv("DANGAN_HOME", str(holding.settings.home))
    out = tmp_path / "labels.pdf"
    result = cli(
        "--home",
        holding.settings.home,
        "labels",
        holding.restricted,
        "-o",
        out,
        "--base-url",
        "https://dangan.example",
    )
    assert result.code == 0 and out.read_bytes()[:4] == b"%PDF"
    assert cli("--home", holding.settings.home, "labels", holding.restricted, "-o", out).code == 2


def test_label_sheet_without_font_files_prints_the_archival_code_whole(monkeypatch, tmp_path,
                                                                      artifacts):
    """Where no CJK font file is installed, labels use the built-in STSong-Light: the 档号's
    middle dots must still be printed (not as missing-glyph boxes) and read back."""
    from pdfminer.high_level import extract_text

    from access import labels

    monkeypatch.setattr(labels, "FONT_CANDIDATES", ())
    code = HOUSEHOLDS[0].code
    label = labels.Label("t" * 24, "http://127.0.0.1/q/" + "t" * 24, "volume",
                         (code, "户卷 · 扫码登录后查看"))
    data = labels.label_sheet_pdf([label])
    (artifacts / "qr-labels-builtin-font.pdf").write_bytes(data)
    assert b"STSong-Light" in data
    text = extract_text(io.BytesIO(data)).replace("\n", "")
    assert code in text and "户卷 · 扫码登录后查看" in text
