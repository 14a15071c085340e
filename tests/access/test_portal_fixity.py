"""Damage an auditor can find: after one byte of one file changed in the only copy and an
audit ran, the fixity page names the file and the kind of damage and the repair state, the
AIP page marks only that file failed, the dashboard raises a red alert linking to the page,
and the HTML fixity report downloads."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "ingest"))
from transfers import small_transfer  # noqa: E402

DAMAGED = "data/objects/户卷/001-申请书.txt"


@pytest.fixture
def audited(home, cli, tmp_path):
    """A small holding whose only copy had one byte of one file changed, then audited."""
    transfer = small_transfer(tmp_path / "t", rows=3)
    result = cli("ingest", transfer, "--json")
    assert result.code == 0, result.err
    uuid = json.loads(result.out)["aips"][0]["uuid"]
    stored = home.home / "aips" / uuid / DAMAGED
    data = bytearray(stored.read_bytes())
    data[0] ^= 0xFF
    stored.write_bytes(bytes(data))
    assert cli("audit", "--aip", uuid).code == 1
    return uuid


def _client(home, role: str):
    from access.portal import create_app

    client = create_app(home, {"TESTING": True}).test_client()
    client.application.test_login(client, role)
    return client


def test_the_fixity_page_names_the_damaged_file_and_the_repair_state(home, audited):
    auditor = _client(home, "auditor")
    page = auditor.get("/fixity")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="damage-alert"' in html and DAMAGED in html
    assert "内容被改变" in html                        # the kind of damage, in Chinese
    assert "无法修复（无完好副本）" in html               # the only copy: nothing to repair from
    assert f"/aip/{audited}" in html and "已损坏" in html
    assert "/fixity/report.html" in html
    report = auditor.get("/fixity/report.html")
    assert report.status_code == 200 and "attachment" in report.headers["Content-Disposition"]
    assert "固定性审计报告" in report.get_data(as_text=True)
    assert _client(home, "researcher").get("/fixity").status_code == 403


def test_only_the_damaged_file_is_marked_failed_on_the_aip_page(home, audited):
    html = _client(home, "auditor").get(f"/aip/{audited}").get_data(as_text=True)
    rows = re.findall(r"<tr><td>(data/[^<]+)</td>.*?</tr>", html, re.S)
    assert len(rows) >= 2
    failed = [path for path, row in zip(rows, re.findall(r"<tr><td>data/.*?</tr>", html, re.S))
              if 'class="fail">未通过' in row]
    assert failed == [DAMAGED]
    assert "fail</span>" not in html and "microsecond" not in html


def test_the_dashboard_turns_red_and_links_the_fixity_page(home, audited):
    html = _client(home, "auditor").get("/dashboard").get_data(as_text=True)
    alert = re.search(r'<p class="notice alert" id="damage-alert".*?</p>', html, re.S)
    assert alert and "/fixity" in alert.group() and "1 个副本已损坏" in alert.group()
    assert "#b00020" in html                               # the gauge is red, not gold
