"""End to end in Debian's headless Chromium (driven by playwright, never its own browser
download): log in, search in Chinese, filter by a facet, open a record, preview and download
a file, print a QR label page. Screenshots go to test-artifacts/portal-*.png."""

from __future__ import annotations

import hashlib
import shutil
import threading
from pathlib import Path

import pytest
from holdings import HOUSEHOLDS, PASSWORD

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed: apt-get install chromium"
)


@pytest.fixture(scope="module")
def server(holding):
    """The portal served on 127.0.0.1 (a free port) for the module."""
    from werkzeug.serving import make_server

    from access.portal import create_app

    from holdings import served_settings

    app = create_app(served_settings(holding.settings))
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    thread.join(10)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()


def _login(page, server: str, user: str) -> None:
    page.goto(f"{server}/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("form.stack button[type=submit]")
    page.wait_for_load_state()


def test_researcher_searches_filters_opens_previews_downloads(server, browser, holding, artifacts):
    context = browser.new_context(
        accept_downloads=True, locale="zh-CN", viewport={"width": 1280, "height": 900}
    )
    page = context.new_page()
    _login(page, server, "researcher")
    assert "researcher" in page.inner_text("header")
    page.fill("header input[name=q]", "扶贫")
    page.press("header input[name=q]", "Enter")
    page.wait_for_load_state()
    assert "条结果" in page.inner_text(".summary")
    assert page.locator(".hit mark").count() >= 1
    page.screenshot(path=str(artifacts / "portal-1-search.png"), full_page=True)
    total_before = int(page.get_attribute(".summary", "data-total"))
    page.click(".facets h3:has-text('类别') + ul li a >> nth=0")
    page.wait_for_load_state()
    assert "category=" in page.url
    page.screenshot(path=str(artifacts / "portal-2-facet.png"), full_page=True)
    assert page.locator(".filter").count() == 1
    assert int(page.get_attribute(".summary", "data-total")) <= total_before
    page.goto(f"{server}/search?q=光伏")
    page.click(".hit a.title >> nth=0")
    page.wait_for_load_state()
    page.screenshot(path=str(artifacts / "portal-3-record.png"), full_page=True)
    page.click("a[href*='/preview/data/objects/'] >> nth=0")
    page.wait_for_load_state()
    page.screenshot(path=str(artifacts / "portal-4-preview.png"), full_page=True)
    # the download link, fetched with the browser's own session (Chromium would open a PDF
    # in its viewer rather than raise a download event)
    href = page.get_attribute("a.button:has-text('下载')", "href")
    fetched = page.request.get(server + href)
    assert fetched.ok and "attachment" in fetched.headers["content-disposition"]
    saved = artifacts / "portal-download.pdf"
    saved.write_bytes(fetched.body())
    original = holding.transfer / "综合/Q001-WS·2016-Y-FPB-0001.pdf"
    assert (
        hashlib.sha256(saved.read_bytes()).hexdigest()
        == hashlib.sha256(original.read_bytes()).hexdigest()
    )
    page.goto(f"{server}/aip/{holding.restricted}")
    assert "仅目录" in page.inner_text("h1") and "马文明" not in page.content()
    page.screenshot(path=str(artifacts / "portal-5-restricted.png"), full_page=True)
    assert total_before >= 1
    context.close()


def test_archivist_prints_a_qr_label_page(server, browser, holding, artifacts):
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    _login(page, server, "archivist")
    page.goto(f"{server}/labels")
    page.check(f"input[name=aip][value='{holding.restricted}']")
    page.check(f"input[name=aip][value='{holding.opened}']")
    page.click("#make-sheet")
    page.wait_for_load_state()
    assert page.locator(".label svg").count() == 2
    page.screenshot(path=str(artifacts / "portal-6-labels.png"), full_page=True)
    pdf = page.pdf(path=str(artifacts / "portal-6-labels-print.pdf"), format="A4")
    assert pdf[:4] == b"%PDF"
    page.goto(f"{server}/dashboard")
    page.screenshot(path=str(artifacts / "portal-7-dashboard.png"), full_page=True)
    page.goto(f"{server}/?lang=en")
    assert "Search the archives" in page.inner_text("main")
    context.close()


# -- the five roles through the portal at a desktop's and a phone's width ---------------------

WIDTHS = (1366, 390)
WALKERS = ("public", "researcher", "archivist", "auditor", "admin")


def _vocabulary_codes() -> tuple[set[str], set[str]]:
    """Codes of the profiles' vocabularies that have a label of their own (``Y`` -> 永久),
    and the profiles' English field names (``category_code``): neither may reach a page."""
    from metadata_profiles import available_profiles, load_profile

    codes, names = {"zho"}, {"seq", "language"}
    for name in available_profiles():
        profile = load_profile(name)
        for vocabulary in profile.vocabularies.values():
            codes |= {t.code for t in vocabulary.terms if t.zh and t.zh != t.code
                      and t.code.isascii()}
        names |= {spec.name for spec in profile.fields if "_" in spec.name}
    return codes, names


def _place_codes(home: Path) -> set[str]:
    """The county, township and village codes the holding's place table names."""
    from metadata_profiles import load_places

    return {code for code in load_places(home) if len(code) >= 6}


def _raw_words(text: str, words: set[str]) -> list[str]:
    """The ``words`` standing alone in ``text`` (not inside a 档号, a date or a digest)."""
    import re

    edge = r"A-Za-z0-9·\-_/.:*＊"
    return sorted({w for w in words
                   if re.search(rf"(?<![{edge}]){re.escape(w)}(?![{edge}])", text)})


def _chinese(texts: list[str]) -> list[str]:
    """The texts among ``texts`` that hold a Chinese character."""
    import re

    return [t for t in texts if re.search(r"[\u3400-\u9fff]", t)]


def _shots_dir(artifacts: Path) -> Path:
    import os

    folder = Path(os.environ.get("DANGAN_SHOTS") or artifacts / "walk")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _check_page(page, role: str, width: int, name: str, shots: Path, problems: list[str],
                places: set[str] = frozenset()) -> None:
    codes, names = _vocabulary_codes()
    text = page.inner_text("body")
    # event details are the preservation tools' own (English) notes: codes are not looked
    # for there, field names are
    events = page.locator("table.events").all_inner_texts()
    plain = text
    for block in events:
        plain = plain.replace(block, "")
    where = f"{role} {name} @{width}"
    if found := _raw_words(plain, {c for c in codes if not c.islower()}):
        problems.append(f"{where}: raw vocabulary codes {found}")
    fields = " ".join(page.locator("table.fields, table.meta").all_inner_texts())
    if found := _raw_words(fields, {c for c in codes if c.islower()}):
        problems.append(f"{where}: raw codes in field tables {found}")
    if found := _raw_words(text, names):
        problems.append(f"{where}: English field names {found}")
    # places by name: no county, township or village code the place table names stands
    # alone where the portal itself labels things (the records' own text may quote one)
    labelled = " ".join(page.locator(
        ".facets, .facts, .filter, table.fields, table.meta, figure").all_inner_texts())
    if found := _raw_words(labelled, places):
        problems.append(f"{where}: bare place codes {found}")
    if width < 500:
        scroll, inner = page.evaluate(
            "[document.documentElement.scrollWidth, window.innerWidth]")
        if scroll > inner:
            problems.append(f"{where}: {scroll} px wide in a {inner} px window")
        if page.locator("header nav.top-nav").count():
            box = page.locator("header nav.top-nav").bounding_box()
            header = page.locator("header").bounding_box()
            if box is None or box["y"] + box["height"] > header["y"] + header["height"] + 1:
                problems.append(f"{where}: the navigation leaves the header bar")
        button = page.locator("header .top-search button").bounding_box()
        if button and button["height"] > 60:
            problems.append(f"{where}: the search button wraps ({button['height']} px high)")
    page.screenshot(path=str(shots / f"{role}-{name}-{width}.png"), full_page=True)


_CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", function (e) {
  window.__danganViolation([e.violatedDirective, e.blockedURI || "inline",
                            e.sourceFile + ":" + e.lineNumber, e.sample].join(" "));
});
"""


def _watch_console(context, page) -> list[str]:
    """What the browser complains of on the pages of ``context``: console errors, uncaught
    script errors and Content-Security-Policy violations (each with the page's address).
    A page asked for on purpose with an error status (403, 404) logs that status as a
    console error; that one message is not a complaint."""
    complaints: list[str] = []

    def console(message) -> None:
        if message.type != "error":
            return
        where = message.location.get("url", "")
        if "Failed to load resource" in message.text and where == page.url:
            return                              # the 403/404 page itself, asked for
        complaints.append(f"console error on {page.url}: {message.text} ({where})")

    page.on("console", console)
    page.on("pageerror", lambda error: complaints.append(f"script error on {page.url}: {error}"))
    context.expose_binding(
        "__danganViolation",
        lambda source, text: complaints.append(f"CSP violation on {source['page'].url}: {text}"))
    context.add_init_script(_CSP_LISTENER)
    return complaints


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("role", WALKERS)
def test_every_role_walks_the_portal(server, browser, holding, artifacts, role, width):
    """Search, a facet, a record, a record's files, the IIIF viewer, the API page, a
    household, requests, labels, the dashboard, the fixity page, 403 and 404: in Chinese
    labels (no vocabulary code, no English field name, no bare place code), and at 390 px
    without a horizontal scroll bar (the files table fits), the navigation inside the
    header."""
    shots = _shots_dir(artifacts)
    context = browser.new_context(locale="zh-CN", viewport={"width": width, "height": 900})
    page = context.new_page()
    complaints = _watch_console(context, page)
    problems: list[str] = []
    if role != "public":
        _login(page, server, role)
    places = _place_codes(holding.settings.home)

    def seen(name: str) -> None:
        _check_page(page, role, width, name, shots, problems, places)
        problems.extend(f"{role} {name} @{width}: {c}" for c in complaints)
        complaints.clear()

    page.goto(f"{server}/search?q=扶贫")
    assert "条结果" in page.inner_text(".summary")
    seen("search")
    if page.locator(".facets li a").count():
        if width < 500:
            assert not page.locator(".facets").is_visible()       # folded on a phone
            page.click("label.facet-toggle-label")
            assert page.locator(".facets").is_visible()
            seen("facets-open")
        page.click(".facets li a >> nth=0")
        page.wait_for_load_state()
        assert page.locator(".filter").count() == 1
        seen("facet")
    page.goto(f"{server}/search?q=扶贫")
    if page.locator(".hit a.title").count():
        page.click(".hit a.title >> nth=0")
        page.wait_for_load_state()
        seen("record")
    # a record page with its files table (every role sees the opened county documents')
    page.goto(f"{server}/aip/{holding.general}")
    assert page.locator("table.files tr").count() > 1
    if width < 500:
        table = page.locator("table.files").bounding_box()
        if table["x"] + table["width"] > width + 1:
            problems.append(f"{role} files table @{width}: {table['width']} px wide")
        links = page.locator("table.files a:has-text('下载') >> nth=0").bounding_box()
        if links is None or links["x"] + links["width"] > width:
            problems.append(f"{role} files table @{width}: the download link is off screen")
    seen("record-files")
    # the household volume's record page: its photo in the IIIF viewer for staff (the others
    # see it masked, without files)
    page.goto(f"{server}/aip/{holding.opened}")
    if page.locator("#iiif-viewer").count():
        page.wait_for_selector("#iiif-viewer[data-loaded]", timeout=30_000)
        page.wait_for_selector("#iiif-status:has-text('·')", timeout=10_000)
        caption = page.inner_text("#iiif-status")
        if found := _raw_words(caption, {"open", "content", "masked", "listed"}):
            problems.append(f"{role} iiif caption @{width}: raw tier {found}")
    elif role in ("archivist", "admin"):
        assert page.locator("section.iiif").count() == 1     # the viewer, or its notice
    seen("iiif")
    answer = page.goto(f"{server}/api-docs")
    assert answer.status == 200 and page.locator("table.operations tr").count() == 15
    if page.locator("#swagger-ui").count():
        page.wait_for_selector("#swagger-ui[data-loaded] .opblock", timeout=30_000)
    else:
        assert "未安装" in page.inner_text("#swagger-ui-missing")
    seen("api-docs")
    answer = page.goto(f"{server}/household/{holding.opened}")
    if answer.status == 200:
        seen("household")
    page.goto(f"{server}/aip/{holding.restricted}")
    seen("aip-restricted")
    page.goto(f"{server}/requests")
    seen("requests")
    answer = page.goto(f"{server}/labels")
    if role in ("archivist", "admin"):
        assert answer.status == 200
        page.fill(".pick-tools input[type=search]", HOUSEHOLDS[1].code)    # filter, then all
        page.check(".pick-tools input[type=checkbox]")
        assert page.is_checked(f"input[name=aip][value='{holding.opened}']")
        assert not page.is_checked(f"input[name=aip][value='{holding.restricted}']")
        page.click("#make-sheet")
        page.wait_for_load_state()
        assert page.locator(".label svg").count() == 1
        seen("labels")
    elif role != "public":
        assert answer.status == 403 and "无权访问" in page.inner_text("h1")
        seen("403")
    page.goto(f"{server}/dashboard")
    # the charts' labels (format names) whole and inside their chart, as the browser draws
    # them: none reaches past the chart's edge or into its bars (its room ends at
    # data-right)
    cut = page.evaluate("""() => [...document.querySelectorAll("svg.chart text.bar-label")]
        .filter(t => { const box = t.getBBox();
                       return box.x < 0 || box.x + box.width > Number(t.dataset.right); })
        .map(t => t.querySelector("title").textContent)""")
    if cut:
        problems.append(f"{role} dashboard @{width}: labels past their room {cut}")
    if role in ("archivist", "auditor", "admin"):
        whole = page.locator("svg.chart text.bar-label title").all_text_contents()
        assert any(len(name) > 22 for name in whole), whole        # a long format name
    seen("dashboard")
    answer = page.goto(f"{server}/fixity")
    if role in ("archivist", "auditor", "admin"):
        assert answer.status == 200 and "各副本最近一次全量校验" in page.inner_text("main")
        seen("fixity")
        # the staff pages in English: the portal's own words all translated (headings,
        # column heads, hints and buttons; the records' own text may be Chinese)
        for name, address in (("fixity-en", "/fixity?lang=en"),
                              ("appraisal-en", "/appraisal?lang=en")):
            assert page.goto(f"{server}{address}").status == 200
            if found := _chinese(page.locator(
                    "main h1, main h2, main th, main p.hint, main p.notice, main button, "
                    "header nav a:not([lang=zh]), main figcaption").all_inner_texts()):
                problems.append(f"{role} {name} @{width}: not translated {found}")
            seen(name)
    answer = page.goto(f"{server}/aip/00000000-0000-4000-8000-000000000000")
    assert answer.status == 404 and "未找到" in page.inner_text("h1")
    assert "Not Found" not in page.inner_text("body")
    seen("404")
    assert page.request.get(f"{server}/favicon.ico").ok
    context.close()
    problems.extend(f"{role} @{width}: {c}" for c in complaints)
    assert not problems, "\n".join(problems)
