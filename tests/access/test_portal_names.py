"""What record and search pages show instead of codes: place names for county, township and
village codes (the shipped place table under the home's places.yaml), 档案门类代码 by their
DA/T 13 names, PREMIS event details in Chinese; and the 年度 order by the full date."""

from __future__ import annotations

import re

from holdings import HOUSEHOLDS, PLACES


def _text(html: str) -> str:
    """The page's text without tags and tooltips (what a reader reads)."""
    html = re.sub(r"<(script|style)\b.*?</\1>", "", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _bare(text: str, code: str) -> bool:
    return bool(re.search(rf"(?<![0-9A-Za-z·\-_/.]){code}(?![0-9A-Za-z·\-_/.])", text))


def test_facets_name_the_county_township_and_village(client_for):
    html = client_for("archivist").get("/search?q=贫困户").get_data(as_text=True)
    facets = html[html.index('class="facets'):]
    facets = facets[:facets.index("</aside>")] if "</aside>" in facets else facets
    assert "大通回族土族自治县" in facets and PLACES["630121100"] in facets
    assert PLACES["630121100201"] in facets
    assert 'title="县级行政区划代码 630121"' in facets
    for code in ("630121", "630121100", "630121100201"):
        assert not _bare(_text(facets), code), code
    # the hits' facts (household, village, year) too; the snippets quote the records
    facts = _text(" ".join(re.findall(r'<div class="facts">.*?</div>', html, re.S)))
    assert "行政村 上庄村" in facts and not _bare(facts, "630121100201")


def test_record_fields_name_the_village_and_the_category(client_for, holding):
    client = client_for("archivist")
    html = client.get(f"/aip/{holding.restricted}/item/item-001").get_data(as_text=True)
    fields = _text(html[html.index('class="meta fields'):])
    assert "大通回族土族自治县河西镇上庄村" in fields and not _bare(fields, "630121100201")
    assert "档案门类代码 精准扶贫户卷" in fields and not _bare(fields, "JF")
    page = client.get(f"/aip/{holding.general}/item/item-001").get_data(as_text=True)
    shown = _text(page[page.index('class="meta fields'):])
    assert "档案门类代码 文书" in shown and not _bare(shown, "WS")


def test_an_unknown_code_stays_a_code_with_its_kind(portal):
    from access.portal.display import place

    with portal.test_request_context("/"):
        shown = str(place("630121999201", "村级行政区划代码"))
        named = str(place("630121", "县级行政区划代码"))
    assert ">630121999201<" in shown and 'title="村级行政区划代码"' in shown
    assert ">大通回族土族自治县<" in named


def test_sample_transfer_adds_its_places_to_the_home(tmp_path, monkeypatch, capsys):
    import yaml

    import dangan
    from metadata_profiles import load_places

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("DANGAN_HOME", str(home))
    assert dangan.main(["sample-transfer", str(tmp_path / "t"), "--households", "3",
                        "--county", "630223", "--csv"]) == 0
    assert "places.yaml" in capsys.readouterr().out
    places = yaml.safe_load((home / "places.yaml").read_text(encoding="utf-8"))["places"]
    sheet = (tmp_path / "t" / "归档文件目录.csv").read_text(encoding="utf-8-sig")
    villages = set(re.findall(r",(630223\d{6}),", sheet))
    assert villages and villages <= set(places)
    assert all(places[v].endswith("村") for v in villages)
    assert places["630223"] == "互助土族自治县"
    assert {v[:9] for v in villages} <= set(places)
    assert load_places(home)["630121"] == "大通回族土族自治县"     # the shipped table beneath


def test_event_details_are_in_chinese(client_for, holding):
    html = client_for("archivist").get(f"/aip/{holding.restricted}").get_data(as_text=True)
    events = html[html.index('class="events"'):]
    events = events[:events.index("</table>")]
    shown = _text(re.sub(r'title="[^"]*"', "", events))
    for english in ("computed in the single read", "PRONOM by Siegfried", "transfer checks",
                    "passed", "not checked", "no virus scanner", "full text:"):
        assert english not in shown, english
    assert "移交检测" in shown and "格式由 Siegfried 识别" in shown
    assert not re.search(r"\btransfer [0-9a-f]{8}", shown)
    assert 'title="DA/T 70-2018 transfer checks' in events        # the text as recorded


def test_year_order_follows_the_full_date(client_for, holding):
    """The household's documents of one year come newest date first (not catalogue order)."""
    client = client_for("archivist")
    body = client.get("/api/v1/search", query_string={
        "q": HOUSEHOLDS[0].code, "sort": "date", "per_page": 100}).get_json()
    dated = [h for h in body["hits"] if h["facets"].get("date")]
    assert len(dated) >= 2
    days = [h["facets"]["date"] for h in dated]
    assert days == sorted(days, reverse=True)
    years = {d[:4] for d in days}
    assert any(sum(d.startswith(y) for d in days) > 1 for y in years)   # ties broken by day
