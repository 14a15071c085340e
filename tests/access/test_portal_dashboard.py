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
