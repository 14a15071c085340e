"""A bureau's own profile and retention schedule, written as YAML only, drive an ingest; the
retention periods, expiry and open dates reach the catalogue and METS; `dangan retention due`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from storage.catalogue import Catalogue
from storage.aip import parse_mets

BUREAU_PROFILE = """\
# 某县档案馆 文书档案方案 (written by the bureau)
id: county-ws
title: 县级文书档案
version: "2024.1"
aggregation: 件
header_markers: [文件标题]
vocabularies:
  retention_period:
    - {code: Y, zh: 永久}
    - {code: D30, zh: 定期30年, aliases: [长期]}
    - {code: D10, zh: 定期10年, aliases: [短期]}
  security_class:
    - {code: GK, zh: 公开}
    - {code: MM, zh: 秘密, ingest: reject}
archival_code:
  field: archival_code
  when_empty: generate
  forms:
    - name: dat22-item
      level: 件
      regex: '^(?P<fonds>[A-Z0-9]{4})-(?P<cat>[A-Z]{2})·(?P<year>(19|20)\\d{2})-(?P<ret>Y|D30|D10)(?:-(?P<org>[A-Z0-9]{1,8}))?-(?P<item>\\d{4})$'
      sequence: [item]
      agree: {fonds: fonds_code, ret: retention_period}
  templates:
    - {fonds: Z109, template: "{fonds_code}-WS·{year}-{retention_period}-BGS-{item_no}"}
fields:
  - {name: archival_code, zh: 档号, req: M}
  - {name: fonds_code, zh: 全宗号, req: M, regex: '^[A-Z0-9]{4}$'}
  - {name: box_no, zh: 盒号, req: M, type: int, min: 1, synonyms: [档案盒号]}
  - {name: title, zh: 文件标题, req: M, synonyms: [题名]}
  - {name: creator, zh: 责任者, req: M}
  - {name: date, zh: 日期, req: M, type: date, not_future: true}
  - {name: year, zh: 年度, req: M, type: year, fill_from: "date:year"}
  - {name: security_class, zh: 密级, req: M, type: enum, vocabulary: security_class, store: label}
  - {name: retention_period, zh: 保管期限, req: M, type: enum, vocabulary: retention_period}
  - {name: jzfp_category, zh: 类别, req: O}
  - {name: computer_filename, zh: 文件名, req: O}
"""

BUREAU_RETENTION = """\
schedule: {id: county-2024, version: "1", status: 本馆保管期限表}
periods:
  - {code: Y, zh: 永久, years: null}
  - {code: D30, zh: 定期30年, years: 30}
  - {code: D10, zh: 定期10年, years: 10}
rules:
  - {id: 01-notice, category: "01", record_type: 一般通知, title_any: [通知], period: D10}
  - {id: 01-minutes, category: "01", record_type: 会议纪要, title_any: [纪要], period: D30}
"""


def bureau_home(home) -> None:
    (home.home / "profiles").mkdir()
    (home.home / "profiles" / "county-ws.yaml").write_text(BUREAU_PROFILE, encoding="utf-8")
    (home.home / "policies").mkdir()
    (home.home / "policies" / "retention.yaml").write_text(BUREAU_RETENTION, encoding="utf-8")


def transfer(root: Path, rows: list[list[str]]) -> Path:
    root.mkdir()
    with open(root / "归档文件目录.csv", "w", encoding="gb18030", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["档号", "全宗号", "档案盒号", "文件标题", "责任者", "日期", "密级", "保管期限",
                         "类别", "文件名"])
        for row in rows:
            writer.writerow(row)
            (root / row[-1]).write_text(f"{row[3]}\n" * 20, encoding="utf-8")
    return root


def test_bureau_profile_and_schedule_drive_an_ingest(home, cli, tmp_path, monkeypatch):
    monkeypatch.setenv("DANGAN_FULLTEXT_OCR", "false")
    bureau_home(home)
    source = transfer(tmp_path / "t", [
        ["", "Z109", "1", "关于开展春耕生产的通知", "县政府办公室", "20090310", "公开", "", "01", "a.txt"],
        ["", "Z109", "1", "县长办公会议纪要", "县政府办公室", "20090512", "公开", "", "01", "b.txt"],
    ])
    result = cli("ingest", source, "--profile", "county-ws", "--json")
    assert result.code == 0, result.out + result.err
    data = json.loads(result.out)
    report = json.loads(Path(data["report"]["json"]).read_text(encoding="utf-8"))
    checks = {c["code"]: c for c in report["checks"]}
    assert report["policies"]["retention"] == "county-2024 1"
    assert report["policies"]["profile"] == "county-ws 2024.1"
    assert "2 条按保管期限表补充" in checks["DG-1-9"]["message"]
    generated = [p["message"] for p in checks["GD-2-4"]["problems"]]
    assert generated == ["档号为空，已按全宗模板生成 Z109-WS·2009-D10-BGS-0001",
                         "档号为空，已按全宗模板生成 Z109-WS·2009-D30-BGS-0001"]
    aip = Catalogue.open(home).aip_details(data["aips"][0]["uuid"])
    items = {i["fields"]["title"]: i["fields"] for i in aip["items"]}
    notice, minutes = items["关于开展春耕生产的通知"], items["县长办公会议纪要"]
    assert notice["retention_period"] == "D10" and notice["retention_expiry"] == "20191231"
    assert minutes["retention_period"] == "D30" and notice["box_no"] == 1
    assert aip["retention_period"] == "D30" and aip["expiry_date"] == "2039-12-31"
    assert aip["open_date"] == "2034-12-31" and aip["control_id"] == "控制"
    assert aip["pii_level"] == "none"
    mets = parse_mets(next((home.home / "aips").glob("*/data/metadata/mets.xml")).read_bytes())
    assert (mets.retention.period, mets.retention.expiry, mets.retention.open_date) == (
        "D30", "2039-12-31", "2034-12-31")
    assert "county-2024 1" in mets.retention.basis


def test_bureau_profile_rejects_what_its_rules_forbid(home, cli, tmp_path):
    bureau_home(home)
    source = transfer(tmp_path / "t", [
        ["Z109-WS·2009-Y-BGS-0001", "Z109", "", "会议纪要", "县政府办公室", "20090310", "秘密", "永久",
         "01", "a.txt"],
    ])
    result = cli("ingest", source, "--profile", "county-ws")
    assert result.code == 1
    assert "GD-2-4" in result.err and "盒号" in result.err and "DG-4-9" in result.err
    assert "row 2" in result.err


def test_retention_due_lists_what_reaches_the_end_of_its_period(home, cli, tmp_path, monkeypatch):
    monkeypatch.setenv("DANGAN_FULLTEXT_OCR", "false")
    bureau_home(home)
    old = transfer(tmp_path / "old", [
        ["", "Z109", "1", "关于开展春耕生产的通知", "县政府办公室", "20090310", "公开", "", "01", "a.txt"]])
    newer = transfer(tmp_path / "newer", [
        ["", "Z109", "2", "县长办公会议纪要", "县政府办公室", "20150512", "公开", "", "01", "b.txt"]])
    permanent = transfer(tmp_path / "permanent", [
        ["", "Z109", "3", "县志编纂方案", "县政府办公室", "20150512", "公开", "永久", "01", "c.txt"]])
    for source in (old, newer, permanent):
        assert cli("ingest", source, "--profile", "county-ws").code == 0
    due = json.loads(cli("retention", "due", "--json").out)
    assert [a["expiry_date"] for a in due["aips"]] == ["2019-12-31"]
    later = json.loads(cli("retention", "due", "--before", "2046-01-01", "--json").out)
    assert [(a["retention_period"], a["expiry_date"]) for a in later["aips"]] == [
        ("D10", "2019-12-31"), ("D30", "2045-12-31")]
    text = cli("retention", "due", "--before", "2046-01-01")
    assert text.code == 0 and "2 AIP(s) due for appraisal" in text.out and "D30" in text.out
    assert cli("retention", "due", "--before", "2046-13-01").code == 2
    none = cli("retention", "due", "--before", "2000-01-01")
    assert "no AIP reaches the end" in none.out


def test_codes_gaps_reports_numbering_gaps_across_the_repository(home, cli, tmp_path,
                                                                monkeypatch):
    monkeypatch.setenv("DANGAN_FULLTEXT_OCR", "false")
    bureau_home(home)
    source = transfer(tmp_path / "t", [
        ["Z109-WS·2009-D10-BGS-0001", "Z109", "1", "通知一", "县政府办公室", "20090310", "公开",
         "定期10年", "01", "a.txt"],
        ["Z109-WS·2009-D10-BGS-0004", "Z109", "1", "通知四", "县政府办公室", "20090311", "公开",
         "定期10年", "01", "b.txt"],
    ])
    result = cli("ingest", source, "--profile", "county-ws", "--json")
    assert result.code == 0, result.err
    report = json.loads(Path(json.loads(result.out)["report"]["json"]).read_text(encoding="utf-8"))
    gap = next(c for c in report["checks"] if c["code"] == "GD-2-6")
    assert gap["severity"] == "warning" and "0002–0003" in gap["problems"][0]["message"]
    text = cli("codes", "gaps")
    assert text.code == 0 and "Z109-WS·2009-D10-BGS  断号 0002–0003" in text.out
    data = json.loads(cli("codes", "gaps", "--prefix", "Z109", "--json").out)
    assert data["gaps"] == {"Z109-WS·2009-D10-BGS": [2, 3]}
    assert json.loads(cli("codes", "gaps", "--prefix", "Q001", "--json").out)["gaps"] == {}
