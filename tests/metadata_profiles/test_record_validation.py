"""The validator: each rule fails on a realistic row under its DA/T 70 code, ID numbers masked."""

from __future__ import annotations

from datetime import date

import pytest
from stdnum.cn import ric

from metadata_profiles import Validator, load_profile, mask_id_number

PROFILE = load_profile("jzfp")
TODAY = date(2024, 6, 1)
GOOD_ID = "630121195402144291"
HOUSEHOLD = {
    "archival_code": "Q001-JF·02·630121100201-0001-001", "creator": "扎西", "title": "扎西贫困户申请书",
    "date": "20140412", "security_class": "限制", "page_count": "1", "retention_period": "永久",
    "jzfp_category": "02", "fonds_code": "Q001", "year": "2014", "head_name": "扎西",
    "head_id_number": GOOD_ID, "village_code": "630121100201", "household_type": "一般贫困户",
    "poverty_causes": "因病、因残", "family_size": "6", "identified_year": "2014", "exit_year": "2019",
}


def check(**changes):
    row = {**HOUSEHOLD, **changes}
    return Validator(PROFILE, TODAY).record({k: v for k, v in row.items() if v is not None})


def codes(result):
    return sorted((f.code, f.field, f.severity) for f in result.findings)


def test_clean_household_row_has_no_findings_and_is_normalised():
    result = check()
    assert result.findings == []
    values = result.values
    assert values["retention_period"] == "Y" and values["security_class"] == "限制"
    assert values["poverty_causes"] == ["因病", "因残"] and values["family_size"] == 6
    assert values["category_code"] == "JF" and result.code.volume == "Q001-JF·02·630121100201-0001"


@pytest.mark.parametrize("changes,expected", [
    ({"title": ""}, ("GD-2-4", "title", "error")),
    ({"head_name": ""}, ("GD-2-4", "head_name", "error")),  # still household by its ID number
    ({"title": "题" * 501}, ("GD-1-2", "title", "error")),
    ({"date": "20140230"}, ("GD-1-3", "date", "error")),
    ({"page_count": "三"}, ("GD-1-3", "page_count", "error")),
    ({"head_id_number": GOOD_ID[:17] + "5"}, ("GD-1-3", "head_id_number", "error")),
    ({"village_code": "6301211002"}, ("GD-1-3", "village_code", "error")),
    ({"household_type": "困难户"}, ("GD-1-4", "household_type", "error")),
    ({"poverty_causes": "因病、懒惰"}, ("GD-1-4", "poverty_causes", "error")),
    ({"jzfp_category": "07"}, ("GD-1-4", "jzfp_category", "error")),
    ({"date": "20250101", "year": "2025"}, ("GD-1-5", "date", "error")),
    ({"exit_year": "2013"}, ("GD-1-5", "exit_year", "error")),
    ({"year": "2015"}, ("GD-1-5", "year", "warning")),
    ({"family_size": "45"}, ("GD-1-5", "family_size", "error")),
    ({"title": "申请书\x07"}, ("GD-1-6", "title", "error")),
    ({"creator": "扎西\u3000"}, ("GD-1-6", "creator", "warning")),
    ({"security_class": "秘密"}, ("DG-4-9", "security_class", "error")),
    ({"archival_code": "Q001-JF·02·630121100201-001"}, None),  # a volume-level code is valid
    ({"archival_code": "Q001-JF·02·630121100299-0001-001"}, ("GD-1-7", "village_code", "error")),
    ({"archival_code": "Q001-JFP·02·630121100201-0001-001"}, ("GD-1-7", "archival_code", "error")),
    ({"archival_code": "Q001－JF•02•630121100201－0001－001"}, ("GD-1-7", "archival_code", "warning")),
])
def test_each_rule_fails_under_its_code(changes, expected):
    found = codes(check(**changes))
    if expected is None:
        assert all(code != "GD-2-4" for code, _, _ in found), found
    else:
        assert expected in found, found


def test_conditional_fields_of_a_household_record():
    result = check(head_id_number="", village_code="")
    assert {(f.code, f.field) for f in result.findings} == {("GD-2-4", "head_id_number")}
    assert "属于建档立卡户档案" in result.findings[0].message_zh
    assert result.values["village_code"] == "630121100201"  # filled from the volume's 档号
    general = check(head_name="", head_id_number="", village_code="", household_type="",
                    poverty_causes="", family_size="", identified_year="", exit_year="",
                    archival_code="Q001-WS·2014-Y-FPB-0001")
    assert general.findings == []


def test_area_code_outside_qinghai_is_a_warning():
    body = "53012119540214429"
    result = check(head_id_number=body + ric.calc_check_digit(body))
    assert [(f.code, f.severity) for f in result.findings] == [("GD-1-5", "warning")]


def test_id_numbers_are_masked_in_every_message():
    bad = GOOD_ID[:17] + "5"
    result = check(head_id_number=bad)
    finding = next(f for f in result.findings if f.field == "head_id_number")
    assert bad not in finding.message_zh + finding.message_en + str(finding.value)
    assert mask_id_number(bad) in finding.message_zh and mask_id_number(bad) == "630121********4295"
    assert "GB 11643" in finding.message_en and "校验码错误" in finding.message_zh


def test_code_parts_must_agree_with_columns():
    result = check(archival_code="Q001-WS·2014-D30-FPB-0001", head_name="", head_id_number="",
                   household_type="", village_code="")
    assert [(f.code, f.field) for f in result.findings] == [("GD-1-7", "retention_period")]


def test_empty_code_asks_for_generation_only_where_a_template_applies():
    general = check(archival_code="", head_name="", head_id_number="", household_type="",
                    village_code="")
    assert general.needs_code and "FPB" in general.template.template and general.findings == []
    household = check(archival_code="")
    assert not household.needs_code
    assert [(f.code, f.rule) for f in household.findings] == [("GD-2-4", "code-empty-no-template")]


def test_missing_columns_are_gd_2_3():
    present = {"archival_code", "title", "creator", "date", "security_class", "page_count",
               "retention_period"}
    found = Validator(PROFILE).columns(present)
    assert [(f.code, f.field) for f in found] == [("GD-2-3", "jzfp_category")]
    assert "精准扶贫类别" in found[0].message_zh
