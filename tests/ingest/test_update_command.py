"""``dangan update`` and ``dangan ingest --as-update``: new content goes through ingest's
checks with a receipt report of its own; duplicates name --as-update."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from transfers import small_transfer

VOLUME = "Q001-JF·02·630121100201-0001"


def _ingest(cli, transfer: Path) -> str:
    got = cli("ingest", transfer, "--json")
    assert got.code == 0, got.err
    return json.loads(got.out)["aips"][0]["uuid"]


def test_update_checks_the_new_file_and_writes_its_receipt(cli, tmp_path):
    uuid = _ingest(cli, small_transfer(tmp_path / "t", rows=2))
    new = tmp_path / "回头看.txt"
    new.write_text("2019 回头看 入户核查\n", encoding="utf-8")
    got = cli("update", uuid, "--add", f"{new}:户卷/003-回头看.txt", "--reason", "回头看",
              "--json")
    assert got.code == 0, got.err
    result = json.loads(got.out)
    assert result["status"] == "updated" and result["version"] == 2
    report = json.loads(Path(result["report"]["json"]).read_text(encoding="utf-8"))
    codes = {c["code"]: c["status"] for c in report["checks"]}
    assert codes["DG-3-1"] == "passed" and codes["GD-3-3"] in ("passed", "failed")
    assert report["transfer"]["kind"] == "update" and report["transfer"]["version"] == 2
    text = cli("history", uuid)
    assert "第 2 版" in text.out and "回头看" in text.out and "003-回头看.txt" in text.out


def test_update_of_a_macro_document_is_refused_and_names_the_file(cli, tmp_path):
    uuid = _ingest(cli, small_transfer(tmp_path / "t", rows=2))
    bad = tmp_path / "表格.xlsm"
    bad.write_bytes(b"PK\x03\x04 not really a workbook")
    got = cli("update", uuid, "--add", f"{bad}:户卷/表格.xlsm", "--reason", "误传")
    assert got.code == 1
    assert "拒绝更新" in got.err and "表格.xlsm" in got.err
    assert json.loads(cli("history", uuid, "--json").out)["versions"][-1]["version"] == 1
    usage = cli("update", uuid, "--reason", "")
    assert usage.code == 2


def test_ingest_as_update_makes_a_version_of_the_held_volume(cli, tmp_path):
    first = small_transfer(tmp_path / "t", rows=2)
    uuid = _ingest(cli, first)
    second = tmp_path / "t2"
    shutil.copytree(first, second)
    (second / "户卷" / "003-申请书.txt").write_text("第3件 回头看 因病\n", encoding="utf-8")
    sheet = second / "归档文件目录.csv"
    lines = sheet.read_text(encoding="utf-8-sig").splitlines()
    lines.append(lines[-1].replace("0001-002", "0001-003").replace("002-申请书", "003-申请书")
                 .replace("第2件申请书", "第3件回头看").replace("2,", "3,", 1))
    sheet.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")
    refused = cli("ingest", second)
    assert refused.code == 1 and "--as-update" in refused.err
    got = cli("ingest", second, "--as-update", "--json")
    assert got.code == 0, got.out + got.err
    result = json.loads(got.out)
    assert [u["aip"] for u in result["updates"]] == [uuid]
    assert result["updates"][0]["changes"]["added"] == ["data/objects/户卷/003-申请书.txt"]
    history = json.loads(cli("history", uuid, "--json").out)["versions"]
    assert [v["version"] for v in history] == [1, 2]
    again = json.loads(cli("ingest", second, "--as-update", "--json").out)
    assert again["updates"] == [] and again["unchanged"] == [uuid]
