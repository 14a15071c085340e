"""The preservation plan: rules by PUID and extension, a tool registry, errors with file and line."""

from __future__ import annotations

import pytest

from policies import ConfigError, load_preservation_policy, load_settings
from tests.policies.test_policy_files import edited, line_of, own


def test_default_rules_and_switch(home, monkeypatch):
    policy = load_preservation_policy(home)
    assert policy.at_ingest is False
    doc = policy.rule_for("fmt/40", "doc")
    assert doc.preservation.target == "PDF/A-2b" and doc.preservation.puids == {"fmt/477"}
    assert doc.access is None and doc.access_source == "preservation"
    pdf = policy.rule_for("fmt/17", "pdf")
    assert pdf.preservation.tool == "ghostscript" and pdf.preservation.without_text == "ocrmypdf"
    assert policy.rule_for(None, "wps").preservation.tool == "libreoffice"
    assert policy.rule_for("fmt/61", "xls").preservation.puids == {"fmt/214"}
    assert policy.rule_for("fmt/476", "pdf") is None                    # PDF/A already
    assert policy.rule_for("x-fmt/385", "mpg").access.target == "MP4/H.264"
    assert policy.tools["ffmpeg"].version == ("ffmpeg", "-version")
    monkeypatch.setenv("DANGAN_NORMALISE_AT_INGEST", "true")
    assert load_preservation_policy(load_settings(home.home)).at_ingest is True


@pytest.mark.parametrize("old, new, needle, words", [
    ("tool: ghostscript, without_text", "tool: gs2, without_text", "tool: gs2", "no tool 'gs2'"),
    ("checks: [opens, text, pdfa]}", "checks: [opens, smell]}", "smell", "is not one of"),
    ("text_similarity: 0.9 ", "text_similarity: 1.5 ", "text_similarity: 1.5", "maximum"),
])
def test_a_broken_plan_names_file_and_line(home, old, new, needle, words):
    path = own(home, "preservation", edited("preservation", old, new))
    with pytest.raises(ConfigError) as caught:
        load_preservation_policy(load_settings(home.home))
    assert f"{path}: line {line_of(path, needle)}" in str(caught.value), str(caught.value)
    assert words in str(caught.value)


def test_access_from_a_preservation_copy_that_is_not_made_is_refused(home):
    text = edited("preservation", """    puid: [fmt/59, fmt/61, fmt/62]
    preservation: {to: XLSX, tool: libreoffice, puid: [fmt/214], checks: [opens, text]}
    access: original""", """    puid: [fmt/59, fmt/61, fmt/62]
    preservation: keep
    access: preservation""")
    own(home, "preservation", text)
    with pytest.raises(ConfigError, match="access: preservation, but the rule keeps"):
        load_preservation_policy(load_settings(home.home))
