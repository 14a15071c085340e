"""DA/T 70 four-property checks on realistic transfers: the clean sample passes every check,
each county-office mistake is caught under its code, and the 检测报告 says so."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ingest.sample_transfer import EICAR, generate
from policies import load_settings
from storage.catalogue import Catalogue

# defect kind -> the codes under which it must be caught (any one of them), and whether the
# transfer is refused (True) or accepted with a warning (False)
CAUGHT = {
    "missing-dh": ({"GD-2-4"}, None),      # generated from the template, or refused (household)
    "wrong-dh": ({"GD-1-7"}, True),
    "gap": ({"GD-2-6"}, False),
    "bad-id": ({"GD-1-3"}, True),
    "missing-file": ({"GD-2-11"}, True),
    "extra-file": ({"GD-4-3"}, True),
    "bad-format": ({"GD-3-3"}, True),
    "encrypted": ({"GD-3-8"}, True),
    "macro": ({"GD-3-8"}, True),
    "eicar": ({"GD-4-2"}, True),
    "secret": ({"DG-4-9"}, True),
    "gb18030-csv": ({"GD-1-7"}, False),    # full-width 档号 normalised, reported as warnings
    "bad-date": ({"GD-1-3", "GD-1-5"}, True),
}
NOT_CHECKABLE = {"GD-1-1", "GD-1-13", "GD-1-14", "GD-2-2", "GD-2-5", "GD-4-7",
                 "DG-1-10"}   # no 防返贫监测 record names a household file in the sample


@pytest.fixture(scope="session")
def signatures(tmp_path_factory) -> Path:
    """A ClamAV signature database holding the EICAR test file, built with sigtool."""
    if shutil.which("sigtool") is None or shutil.which("clamscan") is None:
        pytest.skip("ClamAV (clamscan, sigtool) is not installed: apt-get install clamav")
    folder = tmp_path_factory.mktemp("clamav")
    (folder / "eicar.com").write_bytes(EICAR)
    hdb = subprocess.run(["sigtool", "--md5", "eicar.com"], cwd=folder, capture_output=True,
                         text=True, check=True).stdout
    (folder / "test.hdb").write_text(hdb, encoding="ascii")
    return folder / "test.hdb"


@pytest.fixture
def scanning(home, monkeypatch, signatures):
    """The test home with clamscan and the test signature database configured."""
    monkeypatch.setenv("DANGAN_FULLTEXT_OCR", "false")   # OCR is not what these tests check
    monkeypatch.setenv("DANGAN_ANTIVIRUS_SCANNER", "clamscan")
    monkeypatch.setenv("DANGAN_ANTIVIRUS_DATABASE", str(signatures))
    return load_settings(home.home)


def ingest_json(cli, path: Path, *extra: str) -> tuple[int, dict, dict]:
    result = cli("ingest", path, "--json", *extra)
    data = json.loads(result.out)
    report = json.loads(Path(data["report"]["json"]).read_text(encoding="utf-8"))
    return result.code, data, report


def stored(home) -> list[Path]:
    """AIP folders published in the default filesystem location."""
    folder = home.home / "aips"
    return [p for p in folder.iterdir() if not p.name.startswith(".")] if folder.exists() else []


def by_code(report: dict) -> dict[str, dict]:
    return {c["code"]: c for c in report["checks"]}


def test_clean_sample_passes_every_check(scanning, cli, sample):
    code, data, report = ingest_json(cli, sample)
    assert code == 0 and data["status"] == "accepted" and report["decision"] == "accepted"
    checks = by_code(report)
    for check in report["checks"]:
        if check["code"] in NOT_CHECKABLE:
            assert check["status"] == "not-checked" and check["message"], check
        elif check["code"] == "GD-3-3":
            # plain PDF, DOC, DOCX and XLS are accepted with a warning: true of these files
            assert check["status"] == "failed" and check["severity"] == "warning"
            assert {p["message"].split("（")[0] for p in check["problems"]} == {
                "PDF", "Word (DOC)", "Word (DOCX)", "Excel (XLS)"}
        else:
            assert check["status"] == "passed", check
    assert "ClamAV" in checks["GD-4-1"]["message"] and "test.hdb" in checks["GD-4-1"]["message"]
    assert "ClamAV" in report["tools"]["clamav"]


@pytest.mark.parametrize("kind", sorted(CAUGHT))
def test_each_defect_is_caught_under_its_code(scanning, cli, tmp_path, kind):
    summary = generate(tmp_path / kind, households=3, seed=7, defects=[kind])
    code, data, report = ingest_json(cli, tmp_path / kind)
    codes, refused = CAUGHT[kind]
    failed = {c["code"]: c for c in report["checks"] if c["status"] == "failed"}
    assert codes & set(failed), f"{kind} ({summary.defects}) not caught: {sorted(failed)}"
    if refused is not None:
        assert (data["status"] == "rejected") == refused, (kind, data["status"], sorted(failed))
        assert code == (1 if refused else 0)
    for name in codes & set(failed):
        assert failed[name]["problems"], "every failure lists its problems"
    if data["status"] == "rejected":
        assert data["aips"] == [] and not stored(scanning)


def test_missing_dh_is_generated_from_the_fonds_template_or_refused(scanning, cli, tmp_path):
    summary = generate(tmp_path / "t", households=3, seed=7, defects=["missing-dh"])
    _, data, report = ingest_json(cli, tmp_path / "t")
    problems = by_code(report)["GD-2-4"]["problems"]
    assert len(problems) == 1 and problems[0]["column"] == "档号" and problems[0]["row"]
    if "综合/" in summary.defects[0][1]:
        assert data["status"] == "accepted" and "已按全宗模板生成 Q001-WS·" in problems[0]["message"]
        generated = problems[0]["message"].rsplit(" ", 1)[1]
        with Catalogue.open(scanning).session() as s:
            from sqlalchemy import select

            from storage.catalogue import models
            assert s.scalars(select(models.Item.archival_code)
                             .where(models.Item.archival_code == generated)).first()
    else:
        assert data["status"] == "rejected" and "没有适用的全宗档号模板" in problems[0]["message"]


def test_problems_carry_sheet_row_and_column(scanning, cli, tmp_path):
    generate(tmp_path / "t", households=3, seed=7, defects=["bad-id", "secret"])
    _, _, report = ingest_json(cli, tmp_path / "t")
    checks = by_code(report)
    bad_id = checks["GD-1-3"]["problems"][0]
    assert bad_id["sheet"] == "归档文件目录" and bad_id["row"] > 2
    assert bad_id["column"] == "户主公民身份号码" and "********" in bad_id["message"]
    secret = checks["DG-4-9"]["problems"][0]
    assert secret["column"] == "密级" and "秘密" in secret["message"]


def test_rejected_transfer_leaves_a_printable_report_and_nothing_stored(
        scanning, cli, tmp_path, artifacts):
    kinds = ["wrong-dh", "gap", "bad-id", "missing-file", "extra-file", "bad-format", "encrypted",
             "macro", "eicar", "secret", "bad-date"]
    summary = generate(tmp_path / "t", households=4, seed=7, defects=kinds)
    code, data, report = ingest_json(cli, tmp_path / "t")
    assert code == 1 and data["status"] == "rejected" and report["decision"] == "rejected"
    assert not stored(scanning)
    html = Path(data["report"]["html"]).read_text(encoding="utf-8")
    assert "不通过，退回移交单位" in html and "GD-4-2" in html and "第 " in html
    bad_id = next(d for k, d in summary.defects if k == "bad-id").split(" written as ")[1][:18]
    assert bad_id not in html and bad_id not in json.dumps(report, ensure_ascii=False)
    shutil.copy(data["report"]["html"], artifacts / "rejected-transfer-report.html")
    shutil.copy(data["report"]["json"], artifacts / "rejected-transfer-report.json")


def test_infected_file_is_quarantined_and_never_stored(scanning, cli, tmp_path):
    generate(tmp_path / "t", households=3, seed=7, defects=["eicar"])
    code, data, _ = ingest_json(cli, tmp_path / "t", "--accept-valid")
    assert code == 1 and data["status"] == "partially-accepted"
    quarantined = list((scanning.staging / "quarantine").rglob("*附件.txt"))
    assert len(quarantined) == 1 and quarantined[0].read_bytes() == EICAR
    assert quarantined[0].stat().st_mode & 0o077 == 0
    stored = [p for p in (scanning.home / "aips").rglob("*") if p.is_file()]
    assert stored and not [p for p in stored if p.read_bytes() == EICAR]
    assert any((tmp_path / "t").rglob("*附件.txt")), "the transfer itself is untouched"
    refused = data["rejected_units"]
    assert len(refused) == 1 and refused[0]["problems"][0]["code"] == "GD-4-2"


def test_accept_valid_takes_the_good_volumes_and_lists_the_rest(scanning, cli, tmp_path):
    summary = generate(tmp_path / "t", households=4, seed=7, defects=["missing-file", "bad-id"])
    code, data, report = ingest_json(cli, tmp_path / "t", "--accept-valid")
    assert code == 1 and data["status"] == "partially-accepted"
    refused = {u["archival_code"] for u in data["rejected_units"]}
    assert 1 <= len(refused) <= 2 and len(data["aips"]) == 5 - len(refused)
    assert {a["archival_code"] for a in data["aips"]}.isdisjoint(refused)
    assert report["decision"] == "partially-accepted" and report["rejected_units"]
    html = Path(data["report"]["html"]).read_text(encoding="utf-8")
    assert "退回重新移交的档案单元" in html
    again = cli("ingest", tmp_path / "t", "--accept-valid")
    assert again.code == 0 and "already ingested" in again.out
    assert summary.defects


def test_without_a_scanner_the_virus_checks_are_not_checked_never_passed(home, cli, tmp_path,
                                                                         monkeypatch):
    monkeypatch.setenv("DANGAN_FULLTEXT_OCR", "false")
    generate(tmp_path / "t", households=2, seed=3, defects=["eicar"])
    _, _, report = ingest_json(cli, tmp_path / "t")
    checks = by_code(report)
    assert checks["GD-4-1"]["status"] == "not-checked" and checks["GD-4-2"]["status"] == "not-checked"
    assert "未配置" in checks["GD-4-2"]["message"]
