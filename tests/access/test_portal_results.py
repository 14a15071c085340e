"""Search results people can read: Chinese labels for codes, snippets of the record's own
text, hits told apart, a pager that counts and handles bad pages, a word on single characters,
an exact 档号 first, and — for those who cannot see them — how many restricted records match."""

from __future__ import annotations

import dataclasses
import re

import pytest
from holdings import HOUSEHOLDS, served_settings


def _text(response) -> str:
    return re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))


def test_facets_and_fields_show_labels_with_the_code_in_a_tooltip(client_for, holding):
    html = client_for("archivist").get("/search?q=扶贫").get_data(as_text=True)
    facets = html[html.index('<aside class="facets"'):html.index("</aside>")]
    assert '<span class="term" title="Y">永久</span>' in facets
    assert re.search(r'title="0\d">[^<]*类</span>', facets)
    page = client_for("archivist").get(f"/household/{holding.restricted}").get_data(as_text=True)
    table = page[page.index('<table class="meta fields">'):]
    table = table[:table.index("</table>")]
    assert "保管期限" in table and '<span class="term" title="Y">永久</span>' in table
    assert not re.search(r"<th>[a-z_]+</th>", table)          # no field shown by its name
    assert not re.search(r">\d{8}<", table)                    # no 20161012-style date


def test_snippets_leave_out_the_field_values_and_hits_name_their_volume(client_for):
    html = client_for("archivist").get("/search?q=因病").get_data(as_text=True)
    snippets = re.findall(r'<div class="snippet">(.*?)</div>', html, re.S)
    assert snippets and all("zho" not in s for s in snippets)
    assert not any(HOUSEHOLDS[0].village in s for s in snippets)   # no field-value dump
    assert f"户卷 {HOUSEHOLDS[0].code}" in html or "匹配于" in html
    assert re.search(r'<div class="facts">.*?年</span>', html, re.S)


def test_the_pager_counts_and_bad_pages_are_answered(client_for):
    client = client_for("archivist")
    first = _text(client.get("/search?q=扶贫&per_page=1"))
    pages = int(re.search(r"第 1 / (\d+) 页", first).group(1))
    assert pages >= 2
    beyond = client.get("/search?q=扶贫&per_page=1&page=99")
    assert beyond.status_code == 200
    assert f"共 {pages} 页，没有第 99 页" in _text(beyond) and 'class="hit"' in beyond.get_data(
        as_text=True)
    word = client.get("/search?q=扶贫&page=abc")
    assert word.status_code == 200 and "页码须为数字" in _text(word)


def test_a_single_character_is_explained(client_for):
    assert "单个汉字（马）无法检索" in _text(client_for("archivist").get("/search?q=马"))


def test_an_exact_archival_code_comes_first(client_for):
    code = f"{HOUSEHOLDS[1].code}-002"
    html = client_for("archivist").get(f"/search?q={code}").get_data(as_text=True)
    codes = re.findall(r'<div class="code">([^<]*)</div>', html)
    assert codes and codes[0] == code


@pytest.fixture(scope="module")
def counting_portal(holding):
    from access.portal import create_app

    settings = served_settings(holding.settings)
    values = dict(settings.values)
    values["portal"] = {**values["portal"], "restricted_count_min": 1}
    return create_app(dataclasses.replace(settings, values=values),
                      {"TESTING": True, "WTF_CSRF_ENABLED": False})


def test_readers_are_told_how_many_restricted_records_match(counting_portal, portal):
    anonymous = counting_portal.test_client().get("/search?q=因病")
    told = re.search(r'id="restricted-count">.*?另有 (\d+) 条受控档案', anonymous.get_data(
        as_text=True), re.S)
    assert told and int(told.group(1)) >= 1 and "登录后可提交查档申请" in _text(anonymous)
    staff = counting_portal.test_client()
    counting_portal.test_login(staff, "archivist", username="archivist")
    assert 'id="restricted-count"' not in staff.get("/search?q=因病").get_data(as_text=True)
    # below [portal] restricted_count_min (10 by default) nothing is told: a name's few
    # matches would say that this person's file exists
    few = portal.test_client().get(f"/search?q={HOUSEHOLDS[0].head}")
    assert 'id="restricted-count"' not in few.get_data(as_text=True)


def test_error_pages_and_the_favicon(client_for):
    missing = client_for("researcher").get("/aip/00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404 and "未找到" in _text(missing)
    assert "Not Found" not in _text(missing) and "requested URL" not in _text(missing)
    refused = client_for("researcher").get("/fixity")
    assert refused.status_code == 403 and "无权访问" in _text(refused)
    assert "Forbidden" not in _text(refused)
    icon = client_for("public").get("/favicon.ico")
    assert icon.status_code == 200 and icon.data[:4] == b"\x00\x00\x01\x00"


def test_requests_name_the_item_and_ask_before_deciding(portal, holding, client_for):
    researcher = portal.test_client()
    portal.test_login(researcher, "researcher", username="researcher")
    key = "item-001"
    researcher.post(f"/aip/{holding.restricted}/request", data={"item": key, "purpose": "研究"})
    page = client_for("archivist").get("/requests?status=pending").get_data(as_text=True)
    assert f"/aip/{holding.restricted}/item/{key}" in page
    assert "data-confirm=" in page and ">item-001<" not in page
    own = researcher.get("/requests").get_data(as_text=True)
    assert f"{HOUSEHOLDS[0].code}-001" in own and HOUSEHOLDS[0].head not in own
    admin = portal.test_client()
    portal.test_login(admin, "admin", username="admin")
    users = admin.get("/admin/users").get_data(as_text=True)
    assert "当前账户" in users and "停用账户" in users


def test_staff_find_a_household_by_its_id_number_and_the_lookup_is_audited(client_for, holding):
    from sqlalchemy import select

    from storage.catalogue.database import Catalogue
    from storage.catalogue.models import AuditEntry

    number = HOUSEHOLDS[0].id_number
    html = client_for("archivist").get(f"/search?q={number}").get_data(as_text=True)
    found = html[html.index('id="id-number-matches"'):]
    found = found[:found.index("</section>")]
    assert f"/household/{holding.restricted}" in found and HOUSEHOLDS[0].code in found
    assert number not in found and number not in html[:html.index("</title>")]   # masked
    with Catalogue.open(holding.settings).session() as s:
        entries = list(s.scalars(select(AuditEntry).where(
            AuditEntry.action == "search-id-number")))
    assert entries and entries[-1].object == number[:6] + "********" + number[-4:]
    public = client_for("researcher").get(f"/search?q={number}").get_data(as_text=True)
    assert 'id="id-number-matches"' not in public
