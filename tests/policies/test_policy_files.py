"""Retention, access and format policies: data checked at start-up, with file and line."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from policies import (
    ConfigError,
    load_access_policy,
    load_format_policy,
    load_retention_policy,
    load_settings,
)
from policies.loader import DATA


def own(home, name: str, text: str) -> Path:
    folder = home.home / "policies"
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def edited(name: str, old: str, new: str) -> str:
    text = (DATA / f"{name}.yaml").read_text(encoding="utf-8")
    assert old in text
    return text.replace(old, new, 1)


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                if needle in line)


def test_retention_schedule_decides_highest_and_expiry(home):
    policy = load_retention_policy(home)
    assert [p.code for p in policy.periods] == ["Y", "D30", "D10"]
    assert policy.decide("01", "转发省扶贫开发局关于做好动态调整工作的通知", "").period == "D30"
    assert policy.decide("03", "2018年贫困村致富带头人培训班签到表", "").period == "D10"
    written = policy.decide("02", "扎西户扶贫手册", "定期10年")
    assert (written.period, written.source, written.conflict) == ("D10", "sheet", "Y")
    assert policy.decide("09", "无规则", "").period is None
    assert policy.highest(["D10", "Y", "D30"]) == "Y" and policy.highest(["D10", "30年"]) == "D30"
    assert policy.expiry("D30", 2017) == date(2047, 12, 31) and policy.expiry("Y", 2017) is None


def test_access_policy_open_date_household_and_decisions(home):
    policy = load_access_policy(home)
    today = date(2050, 1, 1)
    general = policy.assess({"date": "20160224", "title": "会议纪要"}, today=today)
    assert general.open_date == date(2041, 12, 31) and general.control_id == "开放"
    assert general.pii_level == "none"
    closed = policy.assess({"date": "20160224"}, today=date(2030, 1, 1))
    assert closed.control_id == "控制" and "未到开放日期" in closed.basis
    household = policy.assess({"date": "19900101", "head_id_number": "630121195402144291"},
                              today=today)
    assert household.control_id == "控制" and household.household
    assert household.pii_level == "sensitive"
    own(home, "access", edited("access", "decisions: []", (
        "decisions:\n  - {id: 2030-审-01, match: {archival_code_prefix: \"Q001-WS·2016\"},\n"
        "     open_date: 2031-12-31, control: 开放, basis: 2030年开放审查意见}")))
    policy = load_access_policy(home)
    decided = policy.assess({"date": "20160224", "archival_code": "Q001-WS·2016-Y-FPB-0001"},
                            today=date(2032, 1, 1))
    assert decided.open_date == date(2031, 12, 31) and decided.control_id == "开放"
    assert "2030-审-01" in decided.basis


def test_format_policy_decides_by_puid_and_extension(home):
    policy = load_format_policy(home)
    assert policy.decide("fmt/95", "pdf").action == "allow"
    assert policy.decide("fmt/17", "pdf").action == "warn"
    assert policy.decide("fmt/523", "docm").action == "reject"
    assert policy.decide(None, "rar").action == "reject"
    assert policy.decide("x-fmt/263", "ofd").name == "OFD"
    own(home, "formats", edited("formats", "default: {action: warn", "default: {action: reject"))
    assert load_format_policy(home).decide("fmt/208", "bin").action == "reject"


@pytest.mark.parametrize("name,old,new,needle,words", [
    ("retention", "period: D10}", "period: D20}", "period: D20}", "unknown period 'D20'"),
    ("retention", "years: 30,", "years: thirty,", "years: thirty", "is not of type"),
    ("access", "open_after_years: 25", "open_after_years: -1", "open_after_years", "minimum"),
    ("access", "head_id_number: sensitive", "head_id_number: secret", "head_id_number: secret",
     "unknown PII level 'secret'"),
    ("formats", "action: allow}", "action: permit}", "action: permit}", "is not one of"),
    ("formats", "puid: [fmt/353]", "puid: [fmt353]", "puid: [fmt353]", "does not match"),
])
def test_broken_policy_names_file_and_line(home, name, old, new, needle, words):
    path = own(home, name, edited(name, old, new))
    loader = {"retention": load_retention_policy, "access": load_access_policy,
              "formats": load_format_policy}[name]
    with pytest.raises(ConfigError) as caught:
        loader(load_settings(home.home))
    assert f"{path}: line {line_of(path, needle)}" in str(caught.value), str(caught.value)
    assert words in str(caught.value)


def test_broken_policy_stops_ingest_at_start_up(home, cli, tmp_path):
    path = own(home, "retention", edited("retention", "counted_from: end_of_formation_year",
                                         "counted_from: sometime"))
    transfer = tmp_path / "t"
    transfer.mkdir()
    (transfer / "a.txt").write_text("x", encoding="utf-8")
    result = cli("ingest", transfer)
    assert result.code == 2
    assert f"{path}: line {line_of(path, 'counted_from')}" in result.err
    assert not (home.home / "reports").exists()
