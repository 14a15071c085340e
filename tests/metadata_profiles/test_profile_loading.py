"""Profiles are data: the shipped ones load, a bureau's own wins, a broken one names file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from metadata_profiles import ProfileError, Validator, available_profiles, load_profile

SHIPPED = Path(__file__).resolve().parents[2] / "metadata_profiles" / "profiles" / "jzfp.yaml"


def test_shipped_profiles_load_with_their_forms_and_vocabularies():
    jzfp, wenshu = load_profile("jzfp"), load_profile("wenshu")
    assert jzfp.aggregation == "户卷" and wenshu.aggregation == "件"
    assert [f.name for f in jzfp.codes.forms] == ["dat22-item", "dat13-item", "jzfp-volume"]
    assert jzfp.vocabularies["jzfp_category"].lookup("防返贫监测").code == "06"
    assert jzfp.vocabularies["security_class"].lookup("机密").ingest == "reject"
    assert jzfp.protected_fields == ("head_id_number",)
    headings = jzfp.headings()
    assert headings["身份证号"] == "head_id_number" and headings["档案号"] == "archival_code"
    assert "electronic_record_id" not in {f.name for f in jzfp.sheet_fields}


def _write(home: Path, text: str, name: str = "jzfp") -> Path:
    folder = home / "profiles"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _broken(home: Path, old: str, new: str) -> Path:
    text = SHIPPED.read_text(encoding="utf-8")
    assert old in text
    return _write(home, text.replace(old, new, 1))


def _line_of(path: Path, needle: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if needle in line)


def test_bureau_profile_in_home_wins(tmp_path):
    text = SHIPPED.read_text(encoding="utf-8").replace("version: 0.2-draft", "version: qh-2024")
    _write(tmp_path, text)
    assert load_profile("jzfp", tmp_path).version == "qh-2024"
    assert "jzfp" in available_profiles(tmp_path)


@pytest.mark.parametrize("old,new,needle,words", [
    ("{name: title, zh: 题名, req: M,", "{name: title, zh: 题名, req: X,", "name: title, zh: 题名",
     "'X' is not one of"),
    ("max_len: 500,", "max_lenght: 500,", "max_lenght", "Additional properties"),
    ("vocabulary: household_type, store: label}", "vocabulary: household_kind, store: label}",
     "household_kind", "unknown vocabulary 'household_kind'"),
    ("regex: '^63\\d{10}$',", "regex: '^63\\d{10$(',", "^63\\d{10$(", "does not compile"),
    ("- {field: head_name, present: true}", "- {field: head_nam, present: true}", "head_nam,",
     "unknown field 'head_nam'"),
    ("sequence: [item, vol]", "sequence: [item, volume_no]", "sequence: [item, volume_no]",
     "no group named 'volume_no'"),
])
def test_broken_profile_names_file_and_line(tmp_path, old, new, needle, words):
    path = _broken(tmp_path, old, new)
    with pytest.raises(ProfileError) as caught:
        load_profile("jzfp", tmp_path)
    message = str(caught.value)
    assert f"{path}: line {_line_of(path, needle)}" in message, message
    assert words in message


def test_duplicate_key_and_syntax_errors_name_the_line(tmp_path):
    path = _write(tmp_path, "id: x\ntitle: 甲\ntitle: 乙\n", "dup")
    with pytest.raises(ProfileError, match=rf"{path}: line 3: key 'title' appears twice"):
        load_profile("dup", tmp_path)
    path = _write(tmp_path, "id: x\nfields: [\n  {name: a\n", "bad")
    with pytest.raises(ProfileError, match=rf"{path}: line \d+, column \d+"):
        load_profile("bad", tmp_path)


def test_unknown_profile_lists_known_ones(tmp_path):
    with pytest.raises(ProfileError, match="known: .*jzfp.*wenshu"):
        load_profile("nonesuch", tmp_path)


def test_bureau_adds_a_field_and_a_synonym_by_yaml_only(tmp_path):
    text = SHIPPED.read_text(encoding="utf-8").replace(
        "  - {name: remarks, zh: 备注,",
        "  - {name: box_no, zh: 盒号, req: M, type: int, min: 1, synonyms: [档案盒号]}\n"
        "  - {name: remarks, zh: 备注,").replace("synonyms: [户主]}", "synonyms: [户主, 户主名]}")
    _write(tmp_path, text)
    profile = load_profile("jzfp", tmp_path)
    assert profile.headings()["档案盒号"] == "box_no" and profile.headings()["户主名"] == "head_name"
    findings = Validator(profile).record({"box_no": "零"}).findings
    assert any(f.field == "box_no" and f.code == "GD-1-3" for f in findings)
