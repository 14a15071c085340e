"""IIIF: Presentation 3 manifests and Image API 3.0 (level 1) services behind the portal's
access rules, and the record page's viewer (OpenSeadragon) loading a manifest in Debian's
headless Chromium (screenshot /tmp/iiif-viewer.png)."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import threading
from datetime import date
from pathlib import Path

import pytest
from holdings import HEADER, SCAN_TEXT, page_image, served_settings

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCHEMA = Path(__file__).resolve().parent / "data" / "iiif_3_0.json"


def _scan_transfer(root: Path, codes: list[str], year: str = "2016",
                   retention: str = "永久") -> Path:
    """County documents scanned to JPEG (no personal information), one page each."""
    folder = root / "综合"
    folder.mkdir(parents=True)
    rows = []
    for n, code in enumerate(codes, 1):
        image = page_image(f"第{n}页 " + SCAN_TEXT).convert("RGB")
        image.save(folder / f"{code}.jpg", "JPEG", quality=85, dpi=(300, 300))
        row = dict.fromkeys(HEADER, "")
        row.update({"序号": str(n), "档号": code, "责任者": "大通县扶贫开发局",
                    "题名": f"合作社帮扶协议扫描件第{n}页", "日期": f"{year}04{n:02d}",
                    "密级": "公开", "页数": "1", "保管期限": retention, "精准扶贫类别": "03",
                    "全宗号": "Q001", "年度": year, "文件组合类型": "单件",
                    "计算机文件名": f"综合/{code}.jpg"})
        rows.append(row)
    with open(root / "归档文件目录.csv", "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.DictWriter(handle, HEADER)
        writer.writeheader()
        writer.writerows(rows)
    return root


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """A home with two AIPs of scans: one opened by a review decision, one still closed
    (formed 2016: opens 2041); a researcher account."""
    from access import accounts
    from access.rules import Reader
    from access.services import AccessService
    from holdings import PASSWORD
    from ingest.pipeline import ingest
    from policies import load_settings

    root = tmp_path_factory.mktemp("iiif")
    (root / "home").mkdir()
    settings = load_settings(root / "home", environ={})
    uuids = []
    for name, codes in (("open", ["Q001-WS·2016-Y-FPB-0301", "Q001-WS·2016-Y-FPB-0302"]),
                        ("closed", ["Q001-WS·2016-Y-FPB-0401"])):
        result = ingest(_scan_transfer(root / name, codes), settings)
        assert result.status == "accepted", result.failures
        uuids.append(result.aips[0]["uuid"])
    squares = _squares_transfer(root / "squares")
    result = ingest(squares, settings)
    assert result.status == "accepted", result.failures
    uuids.append(result.aips[0]["uuid"])
    service = AccessService(settings)
    for uuid in (uuids[0], uuids[2]):
        service.record_decision(Reader("archivist", "fixture"), uuid, None,
                                open_date=date(2020, 1, 1), control="开放", basis="扫描件已公开")
    accounts.add_user(service.catalogue, "researcher", PASSWORD, "researcher")
    return settings, uuids[0], uuids[1], uuids[2]


def _squares_transfer(root: Path) -> Path:
    """The IIIF Image API validator's test image (1000×1000, 10×10 squares of the colours
    its tests expect), drawn from the validator's own table, as one open county document."""
    from iiif_validator.validator import ValidationInfo
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (1000, 1000), (0, 0, 0))
    draw = ImageDraw.Draw(image)
    for x, column in enumerate(ValidationInfo().colorInfo):
        for y, colour in enumerate(column):
            draw.rectangle((x * 100, y * 100, x * 100 + 99, y * 100 + 99), fill=colour)
    folder = root / "综合"
    folder.mkdir(parents=True)
    code = "Q001-WS·2016-Y-FPB-0501"
    image.save(folder / f"{code}.png", "PNG")
    row = dict.fromkeys(HEADER, "")
    row.update({"序号": "1", "档号": code, "责任者": "大通县扶贫开发局", "题名": "色块测试图",
                "日期": "20160501", "密级": "公开", "页数": "1", "保管期限": "永久",
                "精准扶贫类别": "01", "全宗号": "Q001", "年度": "2016", "文件组合类型": "单件",
                "计算机文件名": f"综合/{code}.png"})
    with open(root / "归档文件目录.csv", "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.DictWriter(handle, HEADER)
        writer.writeheader()
        writer.writerow(row)
    return root


@pytest.fixture(scope="module")
def scan_portal(scans):
    from access.portal import create_app

    return create_app(served_settings(scans[0]), {"TESTING": True, "WTF_CSRF_ENABLED": False})


@pytest.fixture(scope="module")
def server(scan_portal):
    from werkzeug.serving import make_server

    httpd = make_server("127.0.0.1", 0, scan_portal, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    thread.join(10)


def validate_manifest(body: dict) -> None:
    """The IIIF Presentation 3 JSON schema (from the IIIF presentation validator)."""
    import jsonschema

    if not SCHEMA.exists():
        pytest.fail(f"{SCHEMA} is missing")
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator(schema).validate(body)   # its $schema names no draft; 7 fits


def test_the_manifest_schema_can_fail():
    bad = {"@context": "http://iiif.io/api/presentation/3/context.json", "type": "Manifest",
           "id": "http://127.0.0.1/iiif/x/manifest", "label": "a plain string", "items": []}
    import jsonschema

    with pytest.raises(jsonschema.ValidationError):
        validate_manifest(bad)
    validate_manifest({**bad, "label": {"zh": ["题名"]}})


def test_manifest_of_open_scans(scan_portal, scans):
    _, opened, _, _ = scans
    client = scan_portal.test_client()
    answer = client.get(f"/iiif/{opened}/manifest", headers={"Accept": "application/ld+json"})
    assert answer.status_code == 200
    assert answer.mimetype == "application/ld+json"
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    body = answer.get_json(force=True)
    validate_manifest(body)
    assert body["type"] == "Manifest" and body["id"].endswith(f"/iiif/{opened}/manifest")
    canvases = body["items"]
    assert [c["label"]["zh"][0] for c in canvases] == ["合作社帮扶协议扫描件第1页",
                                                      "合作社帮扶协议扫描件第2页"]
    for canvas in canvases:
        assert (canvas["width"], canvas["height"]) == (2480, 1600)
        image = canvas["items"][0]["items"][0]["body"]
        assert image["type"] == "Image" and image["format"] == "image/jpeg"
        service = image["service"][0]
        assert service["type"] == "ImageService3" and service["profile"] == "level1"
        path = service["id"].split("://", 1)[1].split("/", 1)[1]
        info = client.get(f"/{path}/info.json").get_json()
        assert info["id"] == service["id"] and info["profile"] == "level1"
        assert (info["width"], info["height"]) == (2480, 1600)
        assert info["tiles"][0]["scaleFactors"][:3] == [1, 2, 4]


def test_image_requests(scan_portal, scans):
    from PIL import Image

    _, opened, _, _ = scans
    client = scan_portal.test_client()
    body = client.get(f"/iiif/{opened}/manifest").get_json()
    base = "/" + body["items"][0]["items"][0]["items"][0]["body"]["service"][0]["id"] \
        .split("://", 1)[1].split("/", 1)[1]
    answer = client.get(f"{base}")
    assert answer.status_code == 303 and answer.location.endswith("/info.json")
    cases = {
        "full/max/0/default.jpg": (2480, 1600),
        "full/620,/0/default.jpg": (620, 400),
        "full/,400/0/default.jpg": (620, 400),
        "full/300,300/0/default.png": (300, 300),
        "full/!500,500/0/default.jpg": (500, 323),
        "0,0,512,512/512,/0/default.jpg": (512, 512),
        "2048,1536,512,512/max/0/default.jpg": (432, 64),   # clipped at the edge
        "1024,0,1024,1024/256,/0/default.jpg": (256, 256),
        "square/200,/0/default.jpg": (200, 200),
    }
    for request, size in cases.items():
        answer = client.get(f"{base}/{request}")
        assert answer.status_code == 200, (request, answer.data[:200])
        image = Image.open(io.BytesIO(answer.data))
        assert image.size == size, request
        assert image.format == ("PNG" if request.endswith("png") else "JPEG")
    # the top of the first page is white paper; a cut of it is white too
    top = Image.open(io.BytesIO(client.get(f"{base}/0,0,100,100/max/0/default.jpg").data))
    assert min(top.convert("L").getdata()) > 200
    for bad in ("full/max/90/default.jpg", "full/max/0/gray.jpg", "full/max/0/default.gif",
                "full/4000,/0/default.jpg", "full/^4000,/0/default.jpg", "pct:10,10,10,10/max/0/default.jpg",
                "9999,0,10,10/max/0/default.jpg", "full/pct:50/0/default.jpg"):
        assert client.get(f"{base}/{bad}").status_code == 400, bad
    assert client.get(f"/iiif/{opened}/image/0123456789abcdef/info.json").status_code == 404


def test_closed_scans_are_not_served(scan_portal, scans):
    """A record not yet open: anonymous readers get 404 (they may not know it exists), a
    researcher who sees its listing 403 for its images and no manifest."""
    from holdings import PASSWORD
    from sqlalchemy import select

    from storage.catalogue import Catalogue
    from storage.catalogue import models as m

    settings, _, closed, _ = scans
    with Catalogue.open(settings).session() as s:
        sha = s.scalars(select(m.File.sha256).where(m.File.aip_uuid == closed,
                                                    m.File.path.like("data/objects/%"))).first()
    image = f"/iiif/{closed}/image/{sha[:16]}"
    anonymous = scan_portal.test_client()
    assert anonymous.get(f"/iiif/{closed}/manifest").status_code == 404
    assert anonymous.get(f"{image}/info.json").status_code == 404
    assert anonymous.get(f"{image}/full/max/0/default.jpg").status_code == 404
    assert "iiif-viewer" not in anonymous.get(f"/aip/{closed}").get_data(as_text=True)
    researcher = scan_portal.test_client()
    scan_portal.test_login(researcher, "researcher", username="researcher")
    assert researcher.get(f"/aip/{closed}").status_code == 200
    assert researcher.get(f"/iiif/{closed}/manifest").status_code == 404
    assert researcher.get(f"{image}/info.json").status_code == 403
    assert researcher.get(f"{image}/full/max/0/default.jpg").status_code == 403
    assert PASSWORD


def test_household_photos_follow_the_rules(portal, holding):
    """The holding's household volumes: the restricted one's photo is 404 to anonymous
    readers; the opened one holds personal information (masked view: no files) so its photo
    is 403; an archivist sees both in a manifest, and the view is audited once."""
    from sqlalchemy import func, select

    from storage.catalogue import Catalogue
    from storage.catalogue import models as m

    catalogue = Catalogue.open(holding.settings)
    with catalogue.session() as s:
        photos = {u: s.scalars(select(m.File.sha256).where(
            m.File.aip_uuid == u, m.File.path.like("%.jpg"))).one()
            for u in (holding.restricted, holding.opened)}
    anonymous = portal.test_client()
    for uuid, status in ((holding.restricted, 404), (holding.opened, 403)):
        image = f"/iiif/{uuid}/image/{photos[uuid][:16]}"
        assert anonymous.get(f"/iiif/{uuid}/manifest").status_code == 404
        assert anonymous.get(f"{image}/info.json").status_code == status
        assert anonymous.get(f"{image}/full/max/0/default.jpg").status_code == status
    archivist = portal.test_client()
    portal.test_login(archivist, "archivist", username="archivist")

    def audited() -> int:
        from storage.catalogue import models as cm

        with catalogue.session() as s:
            return s.scalar(select(func.count()).select_from(cm.AuditEntry).where(
                cm.AuditEntry.action == "iiif-restricted",
                cm.AuditEntry.object.like(f"{holding.restricted}/%")))

    before = audited()
    body = archivist.get(f"/iiif/{holding.restricted}/manifest").get_json()
    validate_manifest(body)
    assert len(body["items"]) == 1
    image = f"/iiif/{holding.restricted}/image/{photos[holding.restricted][:16]}"
    for _ in range(3):
        assert archivist.get(f"{image}/0,0,256,256/256,/0/default.jpg").status_code == 200
    assert audited() == before + 1
    assert 'id="iiif-viewer"' in archivist.get(f"/aip/{holding.restricted}").get_data(
        as_text=True)


def test_the_policy_allows_the_viewers_own_style_and_nothing_more(scan_portal):
    """OpenSeadragon adds one ``<style>`` element itself; the Content-Security-Policy allows
    that text by its hash (not 'unsafe-inline'), so the installed viewer must add exactly it."""
    from access.portal.iiif import VIEWER
    from access.portal.views import VIEWER_STYLE

    policy = scan_portal.test_client().get("/").headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert "unsafe-inline" not in policy and directives["script-src"] == "'self'"
    style = directives["style-src"].split()
    assert style[0] == "'self'" and len(style) == 2 and style[1].startswith("'sha256-")
    if not VIEWER.exists():
        pytest.skip("the viewer is not installed: make viewer (needs npm)")
    script = VIEWER.read_text(encoding="utf-8")
    added = re.findall(r'createElement\("style"\)[^;]*;[^;]*;\w+\.textContent="([^"]*)"', script)
    assert added == [VIEWER_STYLE], f"OpenSeadragon's own style changed: {added}"


@pytest.mark.skipif(not Path(CHROMIUM).exists(),
                    reason="Debian's chromium is not installed: apt-get install chromium")
def test_viewer_loads_the_manifest_in_chromium(server, scans):
    from access.portal.iiif import VIEWER

    if not VIEWER.exists():
        pytest.skip("the viewer is not installed: make viewer (needs npm)")
    from playwright.sync_api import sync_playwright

    _, opened, _, _ = scans
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu",
                                          "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1100})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(f"{server}/aip/{opened}")
            page.wait_for_selector("#iiif-viewer[data-loaded='2']", timeout=30_000)
            # a selector, not wait_for_function: the portal's CSP forbids eval
            page.wait_for_selector("#iiif-viewer[data-tiles]", timeout=30_000)
            page.wait_for_timeout(500)
            page.locator("section.iiif").screenshot(path="/tmp/iiif-viewer.png")
            assert not errors, errors
            # the caption: the page's title, its number and the access in Chinese, never
            # the record's folder name or a tier code
            page.wait_for_selector("#iiif-status:has-text('全文可见')", timeout=10_000)
            caption = page.inner_text("#iiif-status")
            assert "合作社帮扶协议扫描件第1页" in caption and "第 1 / 2 页" in caption, caption
            assert not re.search(r"\b(open|content|masked|listed)\b", caption), caption
        finally:
            browser.close()
    assert any(u.endswith(f"/iiif/{opened}/manifest") for u in requests)
    assert any("/info.json" in u for u in requests)
    assert any(u.endswith("/default.jpg") for u in requests)
    elsewhere = [u for u in requests if u.startswith(("http:", "https:", "ws:", "wss:"))
                 and not u.startswith(server)]
    assert not elsewhere, f"the viewer fetched from elsewhere: {elsewhere}"


def test_image_service_passes_the_iiif_validator(server, scans):
    """The IIIF Image API validator (iiif-validator, the IIIF community's) runs every test of
    its levels 0 and 1 for Image API 3.0 against the served image."""
    from iiif_validator.validator import ImageAPI, TestSuite, ValidationInfo
    from sqlalchemy import select

    from storage.catalogue import Catalogue
    from storage.catalogue import models as m

    settings, _, _, squares = scans
    with Catalogue.open(settings).session() as s:
        sha = s.scalars(select(m.File.sha256).where(m.File.aip_uuid == squares,
                                                    m.File.path.like("%.png"))).one()
    host = server.split("://", 1)[1]
    tests = TestSuite(ValidationInfo()).list_tests("3.0")
    run, failures = [], []
    for name, test in sorted(tests.items()):
        if test["level"] > 1:
            continue
        result = ImageAPI(sha[:16], host, f"iiif/{squares}/image", "http", "", "3.0",
                          debug=False)
        try:
            TestSuite(ValidationInfo()).run_test(name, result)
            error = result.exception
        except Exception as exc:   # noqa: BLE001 - the validator's own failure report
            error = exc
        run.append(name)
        if error is not None and not getattr(error, "warning", False):
            failures.append(f"{name}: {getattr(error, 'message', error)} "
                            f"(got {getattr(error, 'got', '?')}, "
                            f"expected {getattr(error, 'expected', '?')}) {result.urls}")
    assert len(run) >= 10, run
    assert not failures, "\n".join(failures)


def test_deleted_scans_are_gone(scan_portal, scans, tmp_path):
    """An open scan past its retention (定期10年, 2010), deleted by an appraisal decision: its
    manifest and image answer 404, not an error."""
    from datetime import date

    from access.rules import Reader
    from access.services import AccessService
    from ingest.pipeline import ingest
    from storage.catalogue import Catalogue
    from storage.copies import Replicator

    settings = scans[0]
    result = ingest(_scan_transfer(tmp_path / "old", ["Q001-WS·2010-D10-FPB-0601"], "2010",
                                   "定期10年"), settings)
    assert result.status == "accepted", result.failures
    uuid = result.aips[0]["uuid"]
    AccessService(settings).record_decision(Reader("archivist", "fixture"), uuid, None,
                                            open_date=date(2015, 1, 1), control="开放",
                                            basis="已公开")
    client = scan_portal.test_client()
    body = client.get(f"/iiif/{uuid}/manifest").get_json()
    service = body["items"][0]["items"][0]["items"][0]["body"]["service"][0]["id"]
    image = "/" + service.split("://", 1)[1].split("/", 1)[1]
    assert client.get(f"{image}/full/200,/0/default.jpg").status_code == 200
    Replicator(settings, Catalogue.open(settings)).delete(uuid, "鉴定：保管期满，销毁")
    assert client.get(f"/iiif/{uuid}/manifest").status_code == 404
    assert client.get(f"{image}/info.json").status_code == 404
    assert client.get(f"{image}/full/200,/0/default.jpg").status_code == 404
