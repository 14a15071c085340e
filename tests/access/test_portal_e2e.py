"""End to end in Debian's headless Chromium (driven by playwright, never its own browser
download): log in, search in Chinese, filter by a facet, open a record, preview and download
a file, print a QR label page. Screenshots go to test-artifacts/portal-*.png."""

from __future__ import annotations

import hashlib
import shutil
import threading
from pathlib import Path

import pytest
from holdings import PASSWORD

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
