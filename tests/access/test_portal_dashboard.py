"""The dashboard: SVG charts of holdings for every signed-in reader; ingest, formats and
fixity coverage for staff and auditors."""

from __future__ import annotations


def test_charts_by_role(client_for):
    auditor = client_for("auditor").get("/dashboard").get_data(as_text=True)
    assert auditor.count("<svg") >= 5 and "固定性检查覆盖率" in auditor
    researcher = client_for("researcher").get("/dashboard").get_data(as_text=True)
    assert researcher.count("<svg") == 3 and "固定性检查覆盖率" not in researcher
    figures = client_for("archivist").get("/api/v1/dashboard").get_json()
    assert figures["holdings"]["totals"]["volumes"] == 2
    assert figures["fixity"]["copies"] == 3 and figures["fixity"]["fraction"] == 1.0
    assert any(f["puid"] == "fmt/43" or f["name"] for f in figures["formats"])
    assert "fixity" not in client_for("researcher").get("/api/v1/dashboard").get_json()


def test_a_chart_bar_opens_the_search_of_what_it_counts(client_for):
    import re

    archivist = client_for("archivist")
    html = archivist.get("/dashboard").get_data(as_text=True)
    bar = re.search(r'<a href="(/search\?category=(\d\d))">.*?<text[^>]*>(\d+)件</text></a>',
                    html, re.S)
    assert bar, "no linked category bar"
    found = archivist.get(bar.group(1)).get_data(as_text=True)
    assert f'data-total="{bar.group(3)}"' in found           # the bar's count, found again
    alert = client_for("auditor").get("/dashboard").get_data(as_text=True)
    assert 'id="damage-alert"' not in alert                  # nothing damaged: no alert


def _bar_labels(svg: str) -> list[tuple[str, list[str]]]:
    """Each bar label of a chart: its tooltip and its lines as drawn."""
    import re

    return [(title, re.findall(r"<tspan[^>]*>([^<]*)</tspan>", spans))
            for title, spans in re.findall(
                r'<text class="bar-label"[^>]*><title>([^<]*)</title>(.*?)</text>', svg)]


def _solid(text: str) -> str:
    """``text`` without its spaces (a wrapped label loses those it was broken at)."""
    from html import unescape

    return "".join(unescape(text).split())


def test_format_names_are_shown_whole(client_for):
    """A format's name is never cut: a long one wraps onto lines that fit beside the bars,
    the whole name in its tooltip (the dashboard's formats chart and the chart itself)."""
    from html import unescape

    from access.charts import _text_width, bar_chart

    long = "Acrobat PDF/A - Portable Document Format 2b (ISO 19005-2:2011), 已归档的版本"
    svg = bar_chart([(long, 3), ("PNG 1.2", 1)], "formats", label_width=210)
    (title, lines), (short, one) = _bar_labels(svg)
    assert unescape(title) == long and short == "PNG 1.2" and one == ["PNG 1.2"]
    assert len(lines) > 1 and _solid("".join(lines)) == _solid(long)
    assert all(_text_width(unescape(line)) <= 210 - 8 for line in lines)
    (title, lines), _ = _bar_labels(bar_chart([(long, 3), ("PNG", 1)], "f", 300, stacked=True))
    assert len(lines) > 1 and _solid("".join(lines)) == _solid(long)
    assert all(_text_width(unescape(line)) <= 300 - 8 for line in lines)
    html = client_for("archivist").get("/dashboard").get_data(as_text=True)
    figures = client_for("archivist").get("/api/v1/dashboard").get_json()
    names = {unescape(title): _solid("".join(lines)) for title, lines in _bar_labels(html)}
    for f in figures["formats"]:
        assert names.get(f["label"]) == _solid(f["label"]), (f["label"], names)
    assert any(len(f["label"]) > 22 for f in figures["formats"]), "no long format name to show"
