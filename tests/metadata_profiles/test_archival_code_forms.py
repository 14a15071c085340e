"""档号: the three forms, look-alike separators, templates, gaps (GD-1-7, GD-2-6)."""

from __future__ import annotations

import pytest

from metadata_profiles import (
    find_gaps,
    format_numbers,
    load_profile,
    normalise_code,
    parse_code,
    render_template,
)

RULES = load_profile("jzfp").codes


@pytest.mark.parametrize("written,form,bucket,number,volume", [
    ("Z109-WS·2011-Y-BGS-0001", "dat22-item", "Z109-WS·2011-Y-BGS", 1, None),
    ("Q001-WS·2016-D30-0012", "dat22-item", "Q001-WS·2016-D30", 12, None),
    ("Z109-WS·2011·Y·办公室-0001", "dat13-item", "Z109-WS·2011·Y·办公室", 1, None),
    ("Q001-JF·02·630121100201-0003", "jzfp-volume", "Q001-JF·02·630121100201", 3,
     "Q001-JF·02·630121100201-0003"),
    ("Q001-JF·02·630121100201-0003-007", "jzfp-volume", "Q001-JF·02·630121100201-0003", 7,
     "Q001-JF·02·630121100201-0003"),
])
def test_forms_parse_into_parts(written, form, bucket, number, volume):
    code = parse_code(written, RULES)
    assert code is not None and code.form.name == form
    assert (code.bucket, code.number, code.volume) == (bucket, number, volume)


def test_levels_and_parts():
    volume = parse_code("Q001-JF·02·630121100201-0003", RULES)
    item = parse_code("Q001-JF·02·630121100201-0003-007", RULES)
    assert volume.level == "户卷" and item.level == "件"
    assert item.parts["village"] == "630121100201" and item.parts["cls"] == "02"
    assert parse_code("Z109-WS·2011-Y-BGS-0001", RULES).parts == {
        "fonds": "Z109", "cat": "WS", "year": "2011", "ret": "Y", "org": "BGS", "item": "0001"}


@pytest.mark.parametrize("written", [
    "Q001-WS•2016-Y-FPB-0001", "Q001-WS・2016-Y-FPB-0001", "Q001-WS．2016-Y-FPB-0001",
    "Q001－WS·2016—Y–FPB‐0001", "Ｑ００１－ＷＳ・２０１６－Ｙ－ＦＰＢ－０００１", " Q001-WS·2016-Y-FPB-0001 ",
])
def test_look_alike_dots_dashes_and_full_width_are_normalised(written):
    assert normalise_code(written) == "Q001-WS·2016-Y-FPB-0001"
    assert parse_code(written, RULES).text == "Q001-WS·2016-Y-FPB-0001"


@pytest.mark.parametrize("written", [
    "Q001-WSS·2016-Y-FPB-0001",        # category of three letters
    "Q001-WS·16-Y-FPB-0001",           # two-digit year
    "Q001·WS-2016-Y-FPB-0001",         # separators swapped
    "Q001-WS·2016-D20-FPB-0001",       # no such retention class in DA/T 22
    "Q001-WS·2016-Y-FPB-001",          # three-digit 件号 in the DA/T 22 form
    "Q001-JF-02-630121100201-0001",    # household code written with dashes only
    "Q001-JFP·02·630121100201-0001",
    "Q001-JF·07·630121100201-0001",    # category 07 does not exist
    "",
])
def test_malformed_codes_do_not_parse(written):
    assert parse_code(written, RULES) is None


def test_template_and_gaps():
    assert render_template("{fonds_code}-WS·{year}-{retention_period}-FPB-{item_no}",
                           {"fonds_code": "Q001", "year": "2016", "retention_period": "Y"}, 7, 4) \
        == "Q001-WS·2016-Y-FPB-0007"
    with pytest.raises(KeyError):
        render_template("{fonds_code}-{item_no}", {"fonds_code": ""}, 1, 4)
    assert find_gaps([1, 2, 3]) == [] and find_gaps([2, 5]) == [1, 3, 4] and find_gaps([]) == []
    assert format_numbers([3, 5, 6, 7], 4) == "0003, 0005–0007"
