"""Submitted bags against BagIt conformance cases (RFC 8493 and the 0.97 draft; the cases are
in ``bagit_suite.py``): every valid bag is accepted, every invalid one refused with its
reason under a DA/T 70 code, the decisions this repository takes where bagit-python is more
lenient than the RFC (``BagIt-Version : 1.0``) included."""

from __future__ import annotations

import json

import pytest

from bagit_suite import INVALID, VALID, write_bag


@pytest.mark.parametrize("case", sorted(VALID))
def test_valid_bag_is_accepted(case, home, cli, tmp_path):
    bag = VALID[case](tmp_path / "bag")
    result = cli("ingest", bag, "--json")
    assert result.code == 0, result.out + result.err
    data = json.loads(result.out)
    assert data["status"] == "accepted"
    report = json.loads(open(data["report"]["json"], encoding="utf-8").read())
    checks = {c["code"]: c for c in report["checks"]}
    assert checks["GD-1-13"]["status"] == "passed", checks["GD-1-13"]
    assert checks["GD-1-14"]["status"] == "passed", checks["GD-1-14"]


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_bag_is_refused_with_reason(case, home, cli, tmp_path):
    build, code = INVALID[case]
    bag = build(tmp_path / "bag")
    result = cli("ingest", bag)
    assert result.code == 1, result.out + result.err
    assert code in result.err, result.err
    assert "internal error" not in result.err
    assert not (home.home / "aips").exists() or not [
        p for p in (home.home / "aips").iterdir() if not p.name.startswith(".")]


def test_missing_bagit_txt_is_a_broken_bag_not_a_folder(home, cli, tmp_path):
    """LoC v0.97/invalid/missing-bagit.txt: refused as a bag, its manifests never content."""
    build, _ = INVALID["v0.97/invalid/missing-bagit.txt"]
    bag = build(tmp_path / "bag")
    result = cli("ingest", bag, "--json")
    assert result.code == 1
    data = json.loads(result.out)
    report = json.loads(open(data["report"]["json"], encoding="utf-8").read())
    assert report["transfer"]["bag"] is True
    structure = {c["code"]: c for c in report["checks"]}["GD-1-13"]
    assert structure["status"] == "failed"
    assert any("bagit.txt" in p["message"] and p.get("path") == "bagit.txt"
               for p in structure["problems"])


def test_whitespace_before_colon_is_refused_naming_the_line(home, cli, tmp_path):
    """RFC 8493 §2.2.2 has the label end at the colon; bagit-python strips the space, we
    refuse (the decision is in README.md)."""
    build, _ = INVALID["v1.0/invalid/bagit-with-invalid-whitespace"]
    result = cli("ingest", build(tmp_path / "bag"), "--json")
    data = json.loads(result.out)
    report = json.loads(open(data["report"]["json"], encoding="utf-8").read())
    problems = {c["code"]: c for c in report["checks"]}["GD-1-13"]["problems"]
    assert [p["actual"] for p in problems if p.get("path") == "bagit.txt"] == ["BagIt-Version : 1.0"]


def test_bag_inside_one_folder_is_found(home, cli, tmp_path):
    """A bag that arrives as the single folder of a transfer (zip of a bag folder) is a bag."""
    outer = tmp_path / "transfer"
    write_bag(outer / "county-bag")
    (outer / "county-bag" / "bagit.txt").unlink()
    result = cli("ingest", outer)
    assert result.code == 1 and "GD-1-13" in result.err and "bagit.txt" in result.err


def test_plain_folder_with_a_data_folder_stays_a_folder(home, cli, tmp_path):
    """``data/`` alone is no sign of a bag: such a folder is ingested as it is."""
    folder = tmp_path / "transfer"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "说明.txt").write_text("内容\n", encoding="utf-8")
    result = cli("ingest", folder, "--json")
    assert result.code == 0, result.err
    assert json.loads(open(json.loads(result.out)["report"]["json"]).read())["transfer"]["bag"] is False
