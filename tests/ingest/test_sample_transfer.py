"""Tests for ingest.sample_transfer: layout, content, determinism and each defect kind."""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import io
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import openpyxl
import pytest
from pypdf import PdfReader
from stdnum.cn import ric

from ingest.sample_transfer import COLUMNS, COUNTIES, DEFECT_KINDS, EICAR, generate

ITEM_RE = re.compile(
    r"^(?P<fonds>[A-Z0-9]{4})-(?P<cat>[A-Z]{2})·(?P<year>(19|20)\d{2})-(?P<ret>Y|D30|D10)"
    r"(?:-(?P<org>[A-Z0-9]{1,8}|[\u4e00-\u9fff]{1,12}))?-(?P<item>\d{4})$")
VOLUME_RE = re.compile(
    r"^(?P<fonds>[A-Z0-9]{4})-JF·(?P<cls>0[1-6])(?:·(?P<village>\d{12}))?-(?P<vol>\d{3,4})"
    r"(?:-(?P<item>\d{3,4}))?$")
SHEET_NAMES = {"归档文件目录.xlsx", "归档文件目录.csv"}
CAUSES = {"因病", "因残", "因学", "因灾", "缺土地", "缺水", "缺技术", "缺劳力", "缺资金",
          "交通条件落后", "自身发展动力不足"}


# ------------------------------------------------------------------- helpers

def read_sheet(root: Path) -> list[dict]:
    """Catalogue rows as dicts (XLSX: header on row 2; CSV: header on row 1)."""
    xlsx = root / "归档文件目录.xlsx"
    if xlsx.exists():
        ws = openpyxl.load_workbook(xlsx).active
        rows = list(ws.iter_rows(values_only=True))
        header, data = rows[1], rows[2:]
    else:
        raw = (root / "归档文件目录.csv").read_bytes()
        text = raw.decode("utf-8-sig") if raw.startswith(codecs.BOM_UTF8) else raw.decode("gb18030")
        rows = list(csv.reader(io.StringIO(text)))
        header, data = rows[0], rows[1:]
    return [{k: ("" if v is None else v) for k, v in zip(header, r)} for r in data]


def payload_files(root: Path) -> set[str]:
    """Relative paths of every file except the catalogue sheet."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and p.name not in SHEET_NAMES}


def tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def is_real_past_date(value: str) -> bool:
    try:
        return dt.datetime.strptime(value, "%Y%m%d").date() <= dt.date.today()
    except ValueError:
        return False


def code_ok(code: str) -> bool:
    return bool(ITEM_RE.fullmatch(code) or VOLUME_RE.fullmatch(code))


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    out = tmp_path_factory.mktemp("clean") / "transfer"
    summary = generate(out)
    return out, summary, read_sheet(out)


@pytest.fixture(scope="module")
def defect_runs(tmp_path_factory):
    cache: dict[str, tuple] = {}

    def run(kind: str):
        if kind not in cache:
            out = tmp_path_factory.mktemp(kind) / "transfer"
            summary = generate(out, households=4, seed=3, defects=[kind])
            cache[kind] = (out, summary, read_sheet(out))
        return cache[kind]
    return run


# ------------------------------------------------------------------- clean sample

def test_sheet_layout(clean):
    out, summary, rows = clean
    ws = openpyxl.load_workbook(out / "归档文件目录.xlsx").active
    assert ws.title == "归档文件目录"
    assert "归档文件目录" in ws["A1"].value
    assert [str(r) for r in ws.merged_cells.ranges] == ["A1:V1"]
    assert tuple(c.value for c in ws[2]) == COLUMNS
    assert len(rows) == summary.item_count
    assert [r["序号"] for r in rows] == list(range(1, len(rows) + 1))


def test_files_and_rows_match(clean):
    out, summary, rows = clean
    listed = {r["计算机文件名"] for r in rows}
    assert listed == payload_files(out)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert summary.file_count == len(files)
    assert summary.total_bytes == sum(p.stat().st_size for p in files)
    assert summary.households == 5 and summary.defects == []


def test_archival_codes(clean):
    out, _, rows = clean
    for row in rows:
        code, path = row["档号"], row["计算机文件名"]
        assert code_ok(code), code
        if path.startswith("综合/"):
            assert ITEM_RE.fullmatch(code)
            assert re.fullmatch(re.escape(f"综合/{code}.") + r"(pdf|doc|docx|xls|tif)", path)
        else:
            folder, name = path.split("/")
            assert VOLUME_RE.fullmatch(folder) and not VOLUME_RE.fullmatch(folder)["item"]
            assert code == f"{folder}-{name[:3]}"
            assert re.fullmatch(r"\d{3}-.+\.(pdf|jpg|docx)", name)
            assert row["行政村代码"] == VOLUME_RE.fullmatch(folder)["village"]
            assert re.fullmatch(r"63\d{10}", row["行政村代码"])


def test_numbering_has_no_gaps(clean):
    _, _, rows = clean
    buckets: dict[tuple, list[int]] = {}
    for row in rows:
        m = ITEM_RE.fullmatch(row["档号"])
        if m:
            buckets.setdefault((m["year"], m["ret"], m["org"]), []).append(int(m["item"]))
        else:
            v = VOLUME_RE.fullmatch(row["档号"])
            buckets.setdefault((v["village"], v["vol"]), []).append(int(v["item"]))
    assert any(len(nums) >= 3 for nums in buckets.values())
    for nums in buckets.values():
        assert nums == list(range(1, len(nums) + 1))
    volumes: dict[str, list[int]] = {}
    for key in {k for k in buckets if len(k) == 2}:
        volumes.setdefault(key[0], []).append(int(key[1]))
    assert len(volumes) >= 2
    for nums in volumes.values():
        assert sorted(nums) == list(range(1, len(nums) + 1))


def test_controlled_values(clean):
    _, _, rows = clean
    for row in rows:
        assert row["保管期限"] in {"永久", "定期30年", "定期10年"}
        assert row["精准扶贫类别"] in {"01", "02", "03", "04", "05", "06"}
        assert row["密级"] in {"公开", "限制"}
        assert is_real_past_date(row["日期"]) and row["年度"] == row["日期"][:4]
        assert isinstance(row["页数"], int) and row["页数"] >= 1
        if row["户主姓名"]:
            assert row["密级"] == "限制"
            assert row["贫困户属性"] in {"一般贫困户", "低保贫困户", "特困供养贫困户"}
            assert set(row["致贫原因"].split("、")) <= CAUSES
            assert 1 <= row["家庭人口数"] <= 8
            assert 2014 <= row["识别年度"] <= row["脱贫年度"] <= 2020
    assert any(r["贫困户属性"] == "低保贫困户" for r in rows)
    assert any("因病" in r["致贫原因"] for r in rows)


def test_id_numbers_valid(clean):
    out, _, rows = clean
    ids = {r["户主公民身份号码"] for r in rows if r["户主公民身份号码"]}
    assert len(ids) == 5
    assert all(ric.is_valid(n) for n in ids)
    survey_ids = set()
    for pdf in out.glob("*/*入户调查表.pdf"):
        survey_ids |= set(re.findall(r"63\d{15}[\dX]", PdfReader(pdf).pages[0].extract_text()))
    assert ids <= survey_ids and all(ric.is_valid(n) for n in survey_ids)


def test_pdf_text_and_pages(clean):
    out, _, rows = clean
    texts = []
    for row in rows:
        path = out / row["计算机文件名"]
        if path.suffix != ".pdf":
            continue
        reader = PdfReader(path)
        assert len(reader.pages) == row["页数"]
        text = "".join(page.extract_text() for page in reader.pages)
        if "扫描件" in path.name:
            assert text.strip() == "" and len(reader.pages[0].images) == 1
            width, height = reader.pages[0].images[0].image.size
            assert width / (float(reader.pages[0].mediabox.width) / 72) >= 200
        else:
            assert re.search(r"[\u4e00-\u9fff]{4}", text), path
            texts.append(text)
    corpus = "".join(texts)
    for word in ("因病", "低保", "脱贫", "危房改造", "易地扶贫搬迁", "公民身份号码", "银行账号", "帮扶责任人"):
        assert word in corpus


def test_household_contents(clean):
    out, _, _ = clean
    volumes = [p for p in out.iterdir() if p.is_dir() and p.name != "综合"]
    assert len(volumes) == 5
    names = [sorted(p.name[4:] for p in v.iterdir()) for v in volumes]
    for listing in names:
        for needed in ("贫困户申请书.pdf", "入户调查表.pdf", "两公示一公告.pdf", "扶贫手册.pdf",
                       "脱贫确认书.pdf", "入户照片.jpg"):
            assert needed in listing
    assert any("扫描件-评议记录.pdf" in n for n in names)
    assert any("帮扶计划.docx" in n for n in names)
    for jpg in out.glob("*/*.jpg"):
        assert 2_000 < jpg.stat().st_size < 150_000
        assert jpg.read_bytes()[:2] == b"\xff\xd8"


def test_csv_sheet_format(clean, tmp_path):
    _, _, xlsx_rows = clean
    generate(tmp_path / "t", sheet_format="csv")
    raw = (tmp_path / "t" / "归档文件目录.csv").read_bytes()
    assert raw.startswith(codecs.BOM_UTF8)
    assert not (tmp_path / "t" / "归档文件目录.xlsx").exists()
    csv_rows = read_sheet(tmp_path / "t")
    as_text = [{k: str(v) for k, v in r.items()} for r in xlsx_rows]
    assert csv_rows == as_text


# ------------------------------------------------------------------- determinism, arguments

def test_same_seed_same_bytes(clean, tmp_path):
    out, _, _ = clean
    generate(tmp_path / "again")
    assert tree_digest(out) == tree_digest(tmp_path / "again")


def test_same_seed_same_bytes_in_another_process(tmp_path):
    code = ("import sys; from pathlib import Path; from ingest.sample_transfer import generate; "
            "generate(Path(sys.argv[1]), households=3, seed=11, defects=['encrypted', 'macro'])")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "a")], check=True, env=env,
                   cwd=Path(__file__).resolve().parents[2])
    generate(tmp_path / "b", households=3, seed=11, defects=["encrypted", "macro"])
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")


def test_different_seed_differs(clean, tmp_path):
    out, _, rows = clean
    generate(tmp_path / "other", seed=2)
    assert read_sheet(tmp_path / "other") != rows
    assert tree_digest(tmp_path / "other") != tree_digest(out)


def test_refuses_non_empty_out(tmp_path):
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(ValueError, match="not an empty directory"):
        generate(tmp_path)
    generate(tmp_path / "new")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert generate(empty, households=1).item_count > 0


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError) as err:
        generate(tmp_path / "a", defects=["nope"])
    assert "nope" in str(err.value) and all(k in str(err.value) for k in DEFECT_KINDS)
    with pytest.raises(ValueError):
        generate(tmp_path / "b", fonds="q-1")
    with pytest.raises(ValueError):
        generate(tmp_path / "c", sheet_format="ods")
    assert not any((tmp_path / d).exists() for d in "abc")


def test_more_households_spread_over_villages(tmp_path):
    summary = generate(tmp_path / "t", households=40, seed=5)
    rows = read_sheet(tmp_path / "t")
    villages = {r["行政村代码"] for r in rows if r["户主姓名"]}
    assert summary.households == 40 and len(villages) >= 2
    assert len({r["户主公民身份号码"] for r in rows if r["户主姓名"]}) == 40


@pytest.mark.parametrize("code", sorted(COUNTIES))
def test_each_county_gives_its_own_codes_fonds_and_id_numbers(tmp_path, code):
    county = COUNTIES[code]
    generate(tmp_path / "t", households=2, seed=3, county=code)
    rows = read_sheet(tmp_path / "t")
    households = [r for r in rows if r["户主姓名"]]
    assert households and all(r["行政村代码"].startswith(code) for r in households)
    assert {r["全宗号"] for r in rows} == {county.fonds}
    for row in households:     # the ID numbers carry the county's code at registration
        number = row["户主公民身份号码"]
        assert number.startswith(county.id_area) and ric.is_valid(number), number
    sheet = openpyxl.load_workbook(next((tmp_path / "t").glob("*.xlsx")), read_only=True)
    assert county.name in str(next(sheet.active.iter_rows(values_only=True))[0])


def test_two_counties_make_one_holding_without_a_shared_archival_code(tmp_path):
    """What a multi-county demo or benchmark needs: a second sample is no duplicate."""
    generate(tmp_path / "a", households=3, seed=1)
    generate(tmp_path / "b", households=3, seed=1, county="630223")
    codes = [{r["档号"] for r in read_sheet(tmp_path / d)} for d in "ab"]
    assert codes[0] and codes[1] and not codes[0] & codes[1]


def test_unknown_county_is_refused_naming_the_known_ones(tmp_path):
    with pytest.raises(ValueError) as err:
        generate(tmp_path / "x", county="999999")
    assert "999999" in str(err.value) and "630121" in str(err.value)
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------- defects

def test_every_defect_kind_is_described():
    assert len(DEFECT_KINDS) == 13 and all(DEFECT_KINDS.values())


def test_missing_dh(defect_runs):
    _, summary, rows = defect_runs("missing-dh")
    assert [r["档号"] for r in rows].count("") == 1
    assert summary.defects[0][0] == "missing-dh"


def test_wrong_dh(defect_runs):
    _, _, rows = defect_runs("wrong-dh")
    bad = [r["档号"] for r in rows if not code_ok(r["档号"])]
    assert len(bad) == 1 and bad[0]


def test_gap(defect_runs, tmp_path):
    out, summary, rows = defect_runs("gap")
    generate(tmp_path / "ref", households=4, seed=3)
    assert len(rows) == len(read_sheet(tmp_path / "ref")) - 1
    buckets: dict[tuple, list[int]] = {}
    for row in rows:
        m = ITEM_RE.fullmatch(row["档号"])
        if m:
            buckets.setdefault((m["year"], m["ret"]), []).append(int(m["item"]))
    jumps = [n for n in buckets.values() if n != list(range(1, len(n) + 1))]
    assert len(jumps) == 1
    assert {r["计算机文件名"] for r in rows} == payload_files(out)


def test_bad_id(defect_runs):
    out, summary, rows = defect_runs("bad-id")
    bad = [r for r in rows if r["户主公民身份号码"] and not ric.is_valid(r["户主公民身份号码"])]
    assert bad
    folders = {r["计算机文件名"].split("/")[0] for r in bad}
    assert len(folders) == 1
    number = bad[0]["户主公民身份号码"]
    survey = next((out / folders.pop()).glob("*入户调查表.pdf"))
    good = re.findall(r"63\d{15}[\dX]", PdfReader(survey).pages[0].extract_text())[0]
    assert good[:17] == number[:17] and good != number and ric.is_valid(good)


def test_missing_file(defect_runs):
    out, _, rows = defect_runs("missing-file")
    missing = [r["计算机文件名"] for r in rows if not (out / r["计算机文件名"]).exists()]
    assert len(missing) == 1


def test_extra_file(defect_runs):
    out, _, rows = defect_runs("extra-file")
    extra = payload_files(out) - {r["计算机文件名"] for r in rows}
    assert len(extra) == 1
    assert Path(extra.pop()).name in {"Thumbs.db", "新建文本文档.txt"}


def test_bad_format(defect_runs):
    out, _, rows = defect_runs("bad-format")
    rar = [r for r in rows if r["计算机文件名"].endswith(".rar")]
    assert len(rar) == 1
    assert (out / rar[0]["计算机文件名"]).read_bytes().startswith(b"Rar!")
    assert VOLUME_RE.fullmatch(rar[0]["档号"])


def test_encrypted(defect_runs):
    out, summary, rows = defect_runs("encrypted")
    encrypted = [r for r in rows if r["计算机文件名"].endswith(".pdf")
                 and PdfReader(out / r["计算机文件名"]).is_encrypted]
    assert len(encrypted) == 1
    password = summary.defects[0][1].rsplit(" ", 1)[1].rstrip(")")
    reader = PdfReader(out / encrypted[0]["计算机文件名"])
    assert reader.decrypt(password)
    assert len(reader.pages) == encrypted[0]["页数"]


def test_macro(defect_runs):
    out, _, rows = defect_runs("macro")
    docm = [r for r in rows if r["计算机文件名"].endswith(".docm")]
    assert len(docm) == 1
    with zipfile.ZipFile(out / docm[0]["计算机文件名"]) as z:
        assert "word/vbaProject.bin" in z.namelist()
        assert z.read("word/vbaProject.bin").startswith(bytes.fromhex("D0CF11E0A1B11AE1"))
        types = z.read("[Content_Types].xml").decode()
        assert "application/vnd.ms-word.document.macroEnabled.main+xml" in types
        assert "vbaProject" in z.read("word/_rels/document.xml.rels").decode()


def test_eicar(defect_runs):
    out, _, rows = defect_runs("eicar")
    hits = [r for r in rows if (out / r["计算机文件名"]).exists()
            and (out / r["计算机文件名"]).read_bytes() == EICAR]
    assert len(hits) == 1 and len(EICAR) == 68
    assert hits[0]["计算机文件名"].endswith("-附件.txt")


def test_secret(defect_runs):
    _, _, rows = defect_runs("secret")
    assert [r["密级"] for r in rows].count("秘密") == 1


def test_gb18030_csv(defect_runs):
    out, _, rows = defect_runs("gb18030-csv")
    assert not (out / "归档文件目录.xlsx").exists()
    raw = (out / "归档文件目录.csv").read_bytes()
    assert not raw.startswith(codecs.BOM_UTF8)
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    text = raw.decode("gb18030")
    assert text.splitlines()[0].split(",") == list(COLUMNS)
    assert "－" in text and "・" in text and "\u3000" in text
    odd = [r["档号"] for r in rows if not code_ok(r["档号"])]
    assert len(odd) == 2 and all(re.search(r"[\uff01-\uff5e]", c) for c in odd)


def test_bad_date(defect_runs):
    _, _, rows = defect_runs("bad-date")
    assert sum(not is_real_past_date(r["日期"]) for r in rows) == 1


def test_all_defects_together(tmp_path):
    kinds = list(DEFECT_KINDS)
    summary = generate(tmp_path / "a", households=6, seed=4, defects=kinds)
    assert sorted(k for k, _ in summary.defects) == sorted(kinds)
    generate(tmp_path / "b", households=6, seed=4, defects=list(reversed(kinds)))
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    rows = read_sheet(tmp_path / "a")
    assert len(rows) == summary.item_count


# ------------------------------------------------------------------- formats to normalise

def test_formats_to_normalise_are_identified(clean):
    """The sample holds a DOC, DOCX, XLS, a PDF 1.7 without PDF/A and a TIFF scan, each listed in
    the sheet and identified by Siegfried as that format; every other PDF is PDF 1.3."""
    from ingest.formats import identify

    out, _, rows = clean
    paths = [r["计算机文件名"] for r in rows]
    found = dict(zip(paths, identify([out / p for p in paths])))
    by_suffix: dict[str, set] = {}
    for path, info in found.items():
        by_suffix.setdefault(Path(path).suffix, set()).add(info.puid)
    assert by_suffix[".doc"] == {"fmt/40"}
    assert by_suffix[".xls"] == {"fmt/61"}
    assert by_suffix[".docx"] == {"fmt/412"}
    assert by_suffix[".tif"] == {"fmt/353"}
    assert by_suffix[".pdf"] == {"fmt/17", "fmt/276"}
    pdf17 = [p for p, i in found.items() if i.puid == "fmt/276"]
    assert len(pdf17) == 1 and pdf17[0].startswith("综合/")
    general = {r["计算机文件名"]: r for r in rows if r["计算机文件名"].startswith("综合/")}
    assert {Path(p).suffix for p in general} == {".pdf", ".doc", ".docx", ".xls", ".tif"}
    # each is a Chinese 精准扶贫 record of the county, or a province notice it received
    for path, row in general.items():
        if not path.endswith(".pdf") or found[path].puid == "fmt/276":
            assert re.search(r"扶贫|脱贫|贫困", row["题名"]), row
    from PIL import Image
    tif = next(out / p for p in general if p.endswith(".tif"))
    with Image.open(tif) as im:
        assert im.mode == "1" and im.info["compression"] == "group4"
        assert tuple(round(v) for v in im.info["dpi"]) == (200, 200)
    assert PdfReader(out / pdf17[0]).pdf_header == "%PDF-1.7"
    assert "建档立卡" in "".join(pg.extract_text() for pg in PdfReader(out / pdf17[0]).pages)


def test_formats_to_normalise_leave_other_files_unchanged(tmp_path):
    """The added files come from their own random stream: every other file is what it was
    without them, and the 档号 of the county documents are unchanged."""
    from ingest import sample_transfer

    with_them = tmp_path / "with"
    generate(with_them, households=2, seed=4)
    saved = sample_transfer._FORMAT_SPECS
    sample_transfer._FORMAT_SPECS = ()
    try:
        generate(tmp_path / "without", households=2, seed=4)
    finally:
        sample_transfer._FORMAT_SPECS = saved
    a, b = tree_digest(with_them), tree_digest(tmp_path / "without")
    assert set(a) - set(b) and len(set(a) - set(b)) == len(saved)
    assert {k: a[k] for k in b if k != "归档文件目录.xlsx"} == {k: b[k] for k in b if k != "归档文件目录.xlsx"}
