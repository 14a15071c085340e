"""QR labels: opaque tokens, printable sheets (HTML and PDF), boxes, and the scanned
address that opens a record only after the viewer's own login."""

from __future__ import annotations

import io
import re

import pytest

from holdings import HOUSEHOLDS, SECRETS


def test_label_sheet_pdf_and_page_carry_only_opaque_tokens(client_for, holding, artifacts):
    from pdfminer.high_level import extract_text

    archivist = client_for("archivist")
    made = archivist.post("/labels/sheet", data={"aip": [holding.restricted, holding.opened]})
    assert made.status_code == 303
    page = archivist.get(made.headers["Location"])
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
    from storage.catalogue.database import Catalogue

    catalogue = Catalogue.open(holding.settings)
    found = {resolve(catalogue, t) for t in tokens}
    assert found == {("volume", holding.restricted), ("volume", holding.opened)}
    assert all(len(t) == 24 for t in tokens)


def test_scanning_requires_login_then_opens_the_household(client_for, holding):
    from access.labels import token_for
    from storage.catalogue.database import Catalogue

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
    box_url = client_for("researcher").get(f"/q/{token}").headers["Location"]
    assert re.search(r"/box/[A-Za-z0-9_-]{16}$", box_url)   # a random reference, not an id
    box = client_for("researcher").get(box_url)
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


def _audit_count(holding) -> int:
    from sqlalchemy import func, select

    from storage.catalogue import models as m
    from storage.catalogue.database import Catalogue

    with Catalogue.open(holding.settings).session() as s:
        return s.scalar(select(func.count()).select_from(m.AuditEntry))


def _tokens_of(holding, uuid: str) -> int:
    from sqlalchemy import func, select

    from access.models import LabelToken
    from storage.catalogue.database import Catalogue

    with Catalogue.open(holding.settings).session() as s:
        return s.scalar(
            select(func.count()).select_from(LabelToken).where(LabelToken.aip_uuid == uuid)
        )


def test_a_get_of_the_sheet_writes_nothing_tokens_are_made_by_a_post(client_for, holding):
    from access.labels import existing_token, revoke_token, token_for
    from access.portal import create_app
    from storage.catalogue.database import Catalogue

    archivist = client_for("archivist")
    catalogue = Catalogue.open(holding.settings)
    # a volume without a live label: revoke any earlier test's token
    while (token := existing_token(catalogue, "volume", holding.general)) is not None:
        revoke_token(catalogue, token, "test")
    tokens, entries = _tokens_of(holding, holding.general), _audit_count(holding)
    page = archivist.get("/labels/sheet", query_string={"aip": holding.general})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "/q/" not in html and 'id="make-labels"' in html
    assert archivist.get("/labels/sheet.pdf", query_string={"aip": holding.general}
                         ).status_code == 409
    assert (_tokens_of(holding, holding.general), _audit_count(holding)) == (tokens, entries)
    # the POST needs the CSRF token (the portal of this test has CSRF off: check another)
    strict = create_app(holding.settings, {"TESTING": True}).test_client()
    strict.application.test_login(strict, "archivist", username="archivist")
    assert strict.post("/labels/sheet", data={"aip": holding.general}).status_code == 400
    assert _tokens_of(holding, holding.general) == tokens
    made = archivist.post("/labels/sheet", data={"aip": holding.general})
    assert made.status_code == 303 and _tokens_of(holding, holding.general) == tokens + 1
    shown = archivist.get(made.headers["Location"]).get_data(as_text=True)
    assert "/q/" in shown and 'id="make-labels"' not in shown
    assert archivist.get("/labels/sheet.pdf", query_string={"aip": holding.general}
                         ).status_code == 200
    again = archivist.post("/labels/sheet", data={"aip": holding.general})   # reused, not new
    assert again.status_code == 303 and _tokens_of(holding, holding.general) == tokens + 1
    assert token_for(catalogue, "volume", holding.general, "t") == existing_token(
        catalogue, "volume", holding.general
    )


def test_boxes_have_random_references_not_sequential_ids(client_for, holding):
    from sqlalchemy import select

    from access.labels import box_contents, box_into, list_boxes
    from access.models import Box
    from storage.catalogue.database import Catalogue

    catalogue = Catalogue.open(holding.settings)
    first = box_into(catalogue, [], "随机盒-1", "test")
    second = box_into(catalogue, [], "随机盒-2", "test")
    assert first != second and len(first) == 16 and not first.isdigit()
    assert box_contents(catalogue, first)[0] == "随机盒-1"
    assert {b["ref"] for b in list_boxes(catalogue)} >= {first, second}
    researcher = client_for("researcher")
    assert researcher.get(f"/box/{first}").status_code == 200
    with catalogue.session() as s:
        ident = s.scalars(select(Box.id).where(Box.ref == first)).one()
    assert researcher.get(f"/box/{ident}").status_code == 404   # the id opens nothing


def test_boxes_made_before_references_keep_working(tmp_path):
    from alembic import command
    from alembic.config import Config as AlembicConfig
    from sqlalchemy import text

    from access.labels import box_contents, resolve
    from storage.catalogue.database import MIGRATIONS, Catalogue

    catalogue = Catalogue(f"sqlite:///{tmp_path / 'old.db'}")
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    with catalogue.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0008")
    with catalogue.engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO boxes (id, code, created_by, created_at) "
            "VALUES (1, '旧盒01', 'x', '2025-01-01 00:00:00'), "
            "(2, '旧盒02', 'x', '2025-01-01 00:00:00')"))
        connection.execute(text(
            "INSERT INTO label_tokens (token, kind, box_id, created_by, created_at) "
            "VALUES ('printed-label-token-0001', 'box', 1, 'x', '2025-01-01 00:00:00')"))
    catalogue.upgrade()
    kind, ref = resolve(catalogue, "printed-label-token-0001")   # the printed label still works
    assert kind == "box" and len(ref) == 16 and box_contents(catalogue, ref)[0] == "旧盒01"
    with catalogue.engine.connect() as connection:
        refs = [r for (r,) in connection.execute(text("SELECT ref FROM boxes ORDER BY id"))]
    assert len(set(refs)) == 2 and all(refs)


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


def test_qr_codes_carry_the_public_url_never_loopback(client_for, holding, portal):
    """Labels encode ``[portal] public_url``; with a loopback address (or none) the portal
    refuses to print them and says why, as the command does."""
    from holdings import PUBLIC_URL

    from access.portal import create_app

    archivist = client_for("archivist")
    made = archivist.post("/labels/sheet", data={"aip": [holding.restricted]})
    html = archivist.get(made.headers["Location"]).get_data(as_text=True)
    urls = set(re.findall(r'class="url">([^<]+)<', html))
    assert urls and all(u.startswith(PUBLIC_URL + "/q/") for u in urls), urls

    for configured in ("", "http://127.0.0.1:5000", "http://localhost:8080/"):
        settings = type(holding.settings)(holding.settings.home,
                                          {k: dict(v) for k, v in holding.settings.values.items()},
                                          holding.settings.source)
        settings.values["portal"]["public_url"] = configured
        app = create_app(settings, {"TESTING": True, "WTF_CSRF_ENABLED": False})
        client = app.test_client()
        with client.session_transaction() as session:
            with archivist.session_transaction() as signed_in:
                session.update(dict(signed_in))
        page = client.get("/labels")
        assert page.status_code == 200
        assert 'id="no-public-url"' in page.get_data(as_text=True)
        assert "127.0.0.1/q/" not in page.get_data(as_text=True)
        pdf = client.get("/labels/sheet.pdf", query_string={"aip": [holding.restricted]})
        assert pdf.status_code == 409 and pdf.data[:4] != b"%PDF"
        sheet = client.get("/labels/sheet", query_string={"aip": [holding.restricted]})
        assert sheet.status_code == 409 and "/q/" not in sheet.get_data(as_text=True)


def test_cli_refuses_a_loopback_base_url(cli, holding, tmp_path):
    out = tmp_path / "labels.pdf"
    result = cli("--home", holding.settings.home, "labels", holding.restricted, "-o", out,
                 "--base-url", "http://127.0.0.1:5000")
    assert result.code == 2 and "loopback" in result.err and not out.exists()


def test_a_font_with_postscript_outlines_is_passed_over_not_a_500(monkeypatch, artifacts):
    """Debian's Noto Sans CJK ``.ttc`` has CFF outlines reportlab cannot embed: the label sheet
    must fall through to a font that loads (here the built-in STSong-Light), never raise."""
    import glob

    import pytest

    from access import labels

    cff = sorted(glob.glob("/usr/share/fonts/opentype/noto/NotoSansCJK*.ttc"))
    if not cff:
        pytest.skip("no CFF-outline CJK font here: apt-get install fonts-noto-cjk")
    assert labels._loadable_font(cff[0]) is None
    monkeypatch.setattr(labels, "FONT_CANDIDATES", (cff[0],))
    monkeypatch.setattr(labels, "_LOADED", {})
    monkeypatch.setattr(labels, "_REFUSED", set())
    code = HOUSEHOLDS[0].code
    label = labels.Label("t" * 24, "https://dangan.example.gov.cn/q/" + "t" * 24, "volume",
                         (code, "户卷 · 扫码登录后查看"))
    data = labels.label_sheet_pdf([label])
    assert data[:4] == b"%PDF" and b"STSong-Light" in data


def test_the_installed_truetype_font_is_the_one_used(monkeypatch):
    """Where a TrueType CJK font is installed (fonts-wqy-microhei), labels embed it."""
    import pytest

    from access import labels

    monkeypatch.setattr(labels, "_LOADED", {})
    monkeypatch.setattr(labels, "_REFUSED", set())
    usable = [p for p in labels.FONT_CANDIDATES if labels._loadable_font(p)]
    if not usable:
        pytest.skip("no TrueType CJK font installed (Debian package fonts-wqy-microhei)")
    name, source = labels.label_font()
    assert name.startswith("DanganLabel") and usable[0] in source


def test_a_qr_decoded_from_the_pdf_sheet_encodes_the_public_url(client_for, holding, tmp_path):
    """Print the PDF sheet, render it to pixels as a scanner would see it, decode every QR
    code: each one is the configured public address followed by an opaque token."""
    import shutil
    import subprocess

    zxingcpp = pytest.importorskip("zxingcpp", reason="pip install zxing-cpp (QR decoder)")
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm is not installed: apt-get install poppler-utils")
    from PIL import Image

    from holdings import PUBLIC_URL

    archivist = client_for("archivist")
    chosen = {"aip": [holding.restricted, holding.opened]}
    assert archivist.post("/labels/sheet", data=chosen).status_code == 303
    pdf = archivist.get("/labels/sheet.pdf", query_string=chosen)
    assert pdf.status_code == 200
    (tmp_path / "sheet.pdf").write_bytes(pdf.data)
    subprocess.run(["pdftoppm", "-r", "200", "-png", "-f", "1", "-l", "1",
                    str(tmp_path / "sheet.pdf"), str(tmp_path / "page")], check=True,
                   timeout=120)
    image = Image.open(next(tmp_path.glob("page*.png")))
    decoded = [r.text for r in zxingcpp.read_barcodes(image)
               if r.format == zxingcpp.BarcodeFormat.QRCode]
    assert len(decoded) == 2, decoded
    for text in decoded:
        assert re.fullmatch(re.escape(PUBLIC_URL.rstrip("/")) + r"/q/[A-Za-z0-9_-]{24}", text), text
    assert not any("127.0.0.1" in t or "localhost" in t for t in decoded)


def test_an_empty_box_is_refused_on_the_labels_page_keeping_the_choice(client_for, holding):
    archivist = client_for("archivist")
    empty = archivist.post("/labels/box", data={"code": "空盒-01"})
    assert empty.status_code == 400
    html = empty.get_data(as_text=True)
    assert "未装入任何户卷" in html and 'id="label-error"' in html and "<table class=\"pick\"" in html
    unnamed = archivist.post("/labels/box", data={"aip": [holding.opened], "code": " "})
    page = unnamed.get_data(as_text=True)
    assert unnamed.status_code == 400 and "请填写盒号" in page
    assert re.search(rf'value="{holding.opened}"[^>]*checked', page)     # the choice is kept
