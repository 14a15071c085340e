"""Fuzzing the parsers that face the outside, with Hypothesis.

Every target feeds generated input to one parser and asks one thing: it answers (a result, or
a rejection Dangan raises on purpose — :class:`policies.DanganError` — that names the file,
row or parameter), never an internal error. The suite runs a bounded number of examples per
target (``DANGAN_FUZZ_EXAMPLES``, 60 by default); ``make fuzz`` runs many more.
"""

from __future__ import annotations

import csv
import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies import DanganError

EXAMPLES = int(os.environ.get("DANGAN_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))

# text with what submitted strings really hold: CJK, full-width forms, controls, surrogates
# excluded (not encodable), bidi overrides, separators of 档号
HOSTILE = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(list("档号户卷文书·•－—-_/\\..:：\x00\x07\x1b\x7f\u202e\ufeff\ufffe 　0123456789０１２３")),
    ),
    max_size=80,
)


@pytest.fixture(scope="module")
def profile():
    from metadata_profiles import load_profile

    return load_profile("jzfp")


@FUZZ
@given(text=HOSTILE)
def test_search_query_language(text):
    from access.search import parse_query

    try:
        query = parse_query(text)
    except DanganError as exc:
        assert str(exc)
    else:
        assert query is not None


@FUZZ
@given(text=HOSTILE)
def test_archival_code_strings(profile, text):
    from metadata_profiles.archival_code import normalise_code, parse_code

    normalise_code(text, profile.normalise)
    code = parse_code(text, profile.codes, profile.normalise)
    if code is not None:
        # a parsed 档号 reads back as itself
        assert parse_code(code.text, profile.codes, profile.normalise).text == code.text


@FUZZ
@given(text=HOSTILE, digits=st.from_regex(r"\A[0-9]{17}[0-9X]\Z"))
def test_id_numbers_masked_in_any_text(text, digits):
    from metadata_profiles.idnumbers import find_id_numbers, mask_id_numbers

    for sample in (text, text + digits + text):
        masked = mask_id_numbers(sample)
        assert not find_id_numbers(masked), (sample, masked)


@FUZZ
@given(raw=st.binary(max_size=200) | st.builds(lambda t: t.encode("utf-8"), HOSTILE))
def test_bag_declaration(raw):
    from ingest.bagcheck import declaration_problems

    for problem in declaration_problems(raw, "bag/bagit.txt"):
        assert problem.message and problem.path == "bag/bagit.txt"


CELL = st.one_of(HOSTILE, st.integers(-10**12, 10**12).map(str), st.just(""),
                 st.sampled_from(["=1+1", "@SUM(A1)", "2016-10-12", "20161012", "永久", "Y"]))


def _headings(profile) -> list[str]:
    """The profile's own headings (so the header row is found and the rows are read)."""
    return [f.zh for f in profile.fields][:12]


@FUZZ
@given(rows=st.lists(st.lists(CELL, max_size=8), max_size=8),
       encoding=st.sampled_from(["utf-8", "utf-8-sig", "gb18030", "gbk"]),
       header=st.booleans())
def test_catalogue_sheet_csv(profile, tmp_path_factory, rows, encoding, header):
    from ingest.sheet import read_sheet

    table = ([_headings(profile)] if header else []) + rows
    out = io.StringIO()
    csv.writer(out).writerows(table)
    try:
        data = out.getvalue().encode(encoding)
    except UnicodeEncodeError:
        data = out.getvalue().encode("utf-8")
    path = tmp_path_factory.mktemp("csv") / "归档文件目录.csv"
    path.write_bytes(data)
    try:
        sheet = read_sheet(path, path.name, profile)
    except DanganError as exc:
        assert path.name in str(exc)
        return
    for problem in sheet.problems:
        assert problem.message
        assert problem.path in (None, path.name) or path.name in str(problem.path)


@FUZZ
@given(rows=st.lists(st.lists(CELL, max_size=6), max_size=6),
       merges=st.lists(st.tuples(st.integers(1, 6), st.integers(1, 6),
                                 st.integers(0, 2), st.integers(0, 2)), max_size=3))
def test_catalogue_sheet_xlsx_with_merged_cells(profile, tmp_path_factory, rows, merges):
    import openpyxl
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    from ingest.sheet import read_sheet

    book = openpyxl.Workbook()
    ws = book.active
    ws.append(["归档文件目录"])
    ws.append(_headings(profile))
    for row in rows:
        ws.append([ILLEGAL_CHARACTERS_RE.sub("", c) for c in row])  # what XLSX can hold
    for r, c, dr, dc in merges:
        if dr or dc:
            try:
                ws.merge_cells(start_row=r, start_column=c, end_row=r + dr, end_column=c + dc)
            except ValueError:
                pass
    path = tmp_path_factory.mktemp("xlsx") / "目录.xlsx"
    try:
        book.save(path)
    except (ValueError, TypeError):  # openpyxl refuses some characters itself
        return
    try:
        sheet = read_sheet(path, path.name, profile)
    except DanganError as exc:
        assert path.name in str(exc)
        return
    assert all(p.message for p in sheet.problems)


MEMBER = st.one_of(
    HOSTILE.filter(bool),
    st.sampled_from(["../evil.txt", "/etc/passwd", "a/../../b", "data/./x", "C:\\win.txt",
                     "a//b", "a/", ".", "..", "户卷/入户调查表.pdf", "x\x07y.txt"]),
)


def _stage(archive: Path, dest: Path):
    from ingest.staging import Limits, stage

    return stage(archive, dest, ("sha256",), Limits(max_bytes=1 << 20, max_files=50,
                                                     max_ratio=100))


def _staged_inside(dest: Path) -> None:
    root = dest.resolve()
    for path in dest.rglob("*") if dest.exists() else []:
        assert root in path.resolve().parents or path.resolve() == root
        assert not path.is_symlink()


@FUZZ
@given(names=st.lists(MEMBER, min_size=1, max_size=5), gbk=st.booleans(),
       body=st.binary(max_size=64))
def test_zip_members_and_names(tmp_path_factory, names, gbk, body):
    folder = tmp_path_factory.mktemp("zip")
    archive = folder / "transfer.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for name in names:
            info = zipfile.ZipInfo(name.replace("\x00", "_"))
            if gbk:
                try:
                    info.filename = name.encode("gbk").decode("cp437")
                except (UnicodeEncodeError, UnicodeDecodeError):
                    pass
            try:
                z.writestr(info, body)
            except (ValueError, UnicodeEncodeError):
                pass
    dest = folder / "staged"
    try:
        _stage(archive, dest)
    except DanganError as exc:
        assert str(exc)
    _staged_inside(dest)


@FUZZ
@given(names=st.lists(MEMBER, min_size=1, max_size=5),
       kinds=st.lists(st.sampled_from(["file", "symlink", "hardlink", "dir", "fifo"]),
                      min_size=1, max_size=5),
       body=st.binary(max_size=64))
def test_tar_members_and_names(tmp_path_factory, names, kinds, body):
    folder = tmp_path_factory.mktemp("tar")
    archive = folder / "transfer.tar"
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as t:
        for name, kind in zip(names, kinds * 5):
            info = tarfile.TarInfo(name.replace("\x00", "_"))
            if kind == "file":
                info.size = len(body)
                t.addfile(info, io.BytesIO(body))
                continue
            info.type = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                         "dir": tarfile.DIRTYPE, "fifo": tarfile.FIFOTYPE}[kind]
            info.linkname = "../../etc/passwd" if kind != "dir" else ""
            t.addfile(info)
    dest = folder / "staged"
    try:
        _stage(archive, dest)
    except DanganError as exc:
        assert str(exc)
    _staged_inside(dest)


@FUZZ
@given(lines=st.lists(st.one_of(
    st.tuples(st.from_regex(r"\A[0-9a-f]{64}\Z"), MEMBER).map(lambda t: f"{t[0]}  {t[1]}"),
    HOSTILE,
), max_size=6), info=st.lists(HOSTILE, max_size=4))
def test_bag_manifests_and_tag_files(tmp_path_factory, lines, info):
    """A submitted bag with generated manifest lines and bag-info values goes through staging
    and bag validation: accepted or refused with a reason, never a crash."""
    folder = tmp_path_factory.mktemp("bag")
    bag = folder / "transfer"
    (bag / "data").mkdir(parents=True)
    (bag / "data" / "a.txt").write_text("户卷", encoding="utf-8")
    (bag / "bagit.txt").write_bytes(b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")
    text = "\n".join(lines).replace("\x00", "") + "\n"
    (bag / "manifest-sha256.txt").write_text(text, encoding="utf-8", errors="surrogateescape")
    (bag / "bag-info.txt").write_text(
        "".join(f"Note-{i}: {v.replace(chr(0), '')}\n" for i, v in enumerate(info)),
        encoding="utf-8", errors="surrogateescape")
    from ingest.bagcheck import find_bag_root, validate_bag

    dest = folder / "staged"
    try:
        staged = _stage(bag, dest)
    except DanganError as exc:
        assert str(exc)
        return
    files = {f.rel: f for f in staged.files}
    root = find_bag_root(list(files))
    assert root is not None  # it has a bagit.txt: it must be checked as a bag
    findings = validate_bag(staged.root, root, files)
    for problem in findings.structure + findings.digests:
        assert problem.message


@pytest.mark.parametrize("kind", ["zip", "tar"])
@pytest.mark.parametrize("names, why", [
    (["户卷/a.txt", "户卷/a.txt"], "more than once"),
    (["户卷", "户卷/a.txt"], "is a file and also the folder of"),
])
def test_names_the_fuzzer_found_are_refused_not_a_crash(tmp_path, kind, names, why):
    """Found by the targets above: an archive holding one name twice, or a name that is both a
    file and a folder, ended in FileExistsError (exit 3) half-way through unpacking."""
    from ingest.staging import UnsafeTransfer

    archive = tmp_path / f"t.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as z:
            for name in names:
                z.writestr(zipfile.ZipInfo(name), b"x")
    else:
        with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as t:
            for name in names:
                info = tarfile.TarInfo(name)
                info.size = 1
                t.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(UnsafeTransfer) as refused:
        _stage(archive, tmp_path / "staged")
    assert why in str(refused.value) + repr(getattr(refused.value, "problems", ""))
    assert not (tmp_path / "staged").exists() or not any((tmp_path / "staged").rglob("*"))
