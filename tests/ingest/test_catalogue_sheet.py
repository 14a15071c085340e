"""The catalogue sheet as county offices write it: merged headers, several worksheets, CSV in
UTF-8, UTF-8 with BOM or GB18030; every problem with sheet, row and column."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import openpyxl
import pytest

from ingest.sheet import read_sheet
from metadata_profiles import load_profile

PROFILE = load_profile("jzfp")
ID_A, ID_B = "630121195402144291", "630121196208031706"


def workbook(path: Path) -> Path:
    """Title row, a two-row header with 户主 merged over 姓名 | 公民身份号码 and 档号 merged
    down, household values merged down over their rows, an instructions sheet first, and a
    second year on its own worksheet."""
    book = openpyxl.Workbook()
    notes = book.active
    notes.title = "填表说明"
    notes.append(["本表按年度分工作表填写；日期格式为 YYYYMMDD。"])
    for title, rows in (("2014年", [("Q001-JF·02·630121100201-0001-001", "扎西贫困户申请书", "扎西", ID_A),
                                    ("Q001-JF·02·630121100201-0001-002", "扎西户入户调查表", None, None)]),
                        ("2015年", [("Q001-JF·02·630121100201-0002-001", "杨凤霞贫困户申请书",
                                     "杨凤霞", ID_B)])):
        sheet = book.create_sheet(title)
        sheet.append(["大通县扶贫开发局 归档文件目录"])
        sheet.merge_cells("A1:H1")
        sheet.append(["档号", "题名", "户主", None, "日期", "密级", "页数", "保管期限"])
        sheet.append([None, None, "姓名", "公民身份号码", None, None, None, None])
        for column in "ABEFGH":
            sheet.merge_cells(f"{column}2:{column}3")
        sheet.merge_cells("C2:D2")
        for code, name, head, id_number in rows:
            sheet.append([code, name, head, id_number, datetime(2014, 4, 12), "限制", 2, "永久"])
        if len(rows) == 2:  # the household's name and number are merged down over its rows
            sheet.merge_cells("C4:C5")
            sheet.merge_cells("D4:D5")
    book.save(path)
    return path


def test_merged_two_row_header_and_several_worksheets(tmp_path):
    sheet = read_sheet(workbook(tmp_path / "目录.xlsx"), "目录.xlsx", PROFILE)
    assert sheet.problems == [] and sheet.encoding == "XLSX"
    assert sheet.sheets == ["2014年", "2015年"] and sheet.skipped == ["填表说明"]
    assert sheet.heading("2014年", "head_name") == "户主姓名"
    assert sheet.heading("2014年", "head_id_number") == "户主公民身份号码"
    assert [(r.sheet, r.row) for r in sheet.rows] == [("2014年", 4), ("2014年", 5), ("2015年", 4)]
    second = sheet.rows[1].values
    assert second["head_name"] == "扎西" and second["head_id_number"] == ID_A
    assert second["date"] == "20140412" and second["page_count"] == "2"
    assert sheet.rows[2].key == "2015年:4"


@pytest.mark.parametrize("encoding,label", [("utf-8", "UTF-8"), ("utf-8-sig", "UTF-8（带 BOM）"),
                                            ("gb18030", "GB18030")])
def test_csv_encodings(tmp_path, encoding, label):
    text = ("序号,档号,题名,责任者,日期,户主公民身份号码,备注\n"
            f"1,Ｑ001－WS・2016－Y－FPB－0001,会议纪要　,扶贫开发局,20160224,{ID_A},𠮷\n")
    path = tmp_path / "归档文件目录.csv"
    path.write_bytes(text.encode(encoding))
    sheet = read_sheet(path, path.name, PROFILE)
    assert sheet.problems == [] and sheet.encoding == label
    values = sheet.rows[0].values
    assert values["archival_code"] == "Ｑ001－WS・2016－Y－FPB－0001"   # normalised later, reported
    assert values["remarks"] == "𠮷" and sheet.rows[0].row == 2


def test_unreadable_and_headerless_sheets_are_problems_not_crashes(tmp_path):
    broken = tmp_path / "目录.xlsx"
    broken.write_bytes(b"PK\x03\x04 not really a workbook")
    sheet = read_sheet(broken, broken.name, PROFILE)
    assert sheet.rows == [] and "目录文件无法读取" in sheet.problems[0].message
    latin = tmp_path / "目录.csv"
    latin.write_bytes(b"\xa1\xa1\x81\x30\x81\xff,\xff\xfe")  # neither UTF-8 nor GB18030
    assert read_sheet(latin, latin.name, PROFILE).problems
    headerless = tmp_path / "清单.csv"
    headerless.write_text("名称,日期\n甲,20160101\n", encoding="utf-8")
    sheet = read_sheet(headerless, headerless.name, PROFILE)
    assert "未找到表头" in sheet.problems[0].message


def test_duplicate_column_is_reported_with_its_position(tmp_path):
    path = tmp_path / "目录.csv"
    path.write_text("题名,文件题名,日期\n甲,乙,20160101\n", encoding="utf-8")
    sheet = read_sheet(path, path.name, PROFILE)
    problem = sheet.problems[0]
    assert problem.column == "文件题名" and problem.row == 1 and problem.severity == "warning"
    assert sheet.rows[0].values["title"] == "甲"
