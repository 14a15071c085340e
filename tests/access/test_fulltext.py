"""Full text at ingest: PDF text layers, DOCX, XLSX, plain text, OCR of scans (tesseract
chi_sim) with its accuracy measured, and not-checked — never a silent pass — when OCR is
unavailable. The OCR tests skip, naming the Debian packages, where tesseract, its chi_sim
model, pdftoppm or the font that draws their pages is missing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from holdings import (
    HOUSEHOLDS,
    POLICY_TEXT,
    SCAN_TEXT,
    FONT,
    ocr_unavailable,
    page_image,
    pdf_font,
    scan_pdf,
    text_pdf,
)

from ingest import fulltext

needs_ocr = pytest.mark.skipif(bool(ocr_unavailable()), reason=ocr_unavailable() or "")
needs_pdf_ocr = pytest.mark.skipif(bool(ocr_unavailable(scanned_pdf=True)),
                                   reason=ocr_unavailable(scanned_pdf=True) or "")
needs_tesseract = pytest.mark.skipif(
    shutil.which("tesseract") is None,
    reason="tesseract is not installed: apt-get install tesseract-ocr tesseract-ocr-chi-sim")

OCR_PAGE = (
    "青海省大通回族土族自治县精准扶贫工作总结。二〇一六年，全县紧紧围绕脱贫攻坚目标，"
    "坚持精准识别、精准施策、精准脱贫，建立健全建档立卡贫困户动态管理机制。全年实施易地"
    "扶贫搬迁项目十二个，发放扶贫小额信贷三千余万元，新建村级光伏电站二十座，开展技能培训"
    "两千人次，落实健康扶贫和教育资助政策，贫困群众收入稳步增长，生产生活条件明显改善。"
)


def char_accuracy(reference: str, found: str) -> float:
    """1 - (Levenshtein distance / reference length), over non-space characters."""
    ref = "".join(reference.split())
    hyp = "".join(found.split())
    previous = list(range(len(hyp) + 1))
    for i, a in enumerate(ref, 1):
        current = [i]
        for j, b in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a != b)))
        previous = current
    return 1 - previous[-1] / len(ref)


@needs_ocr
def test_ocr_character_accuracy_on_a_generated_chinese_page(tmp_path, artifacts):
    image = tmp_path / "page.png"
    page_image(OCR_PAGE).save(image, dpi=(300, 300))
    text = fulltext.ocr_image(image, fulltext.Options())
    accuracy = char_accuracy(OCR_PAGE, text)
    (artifacts / "ocr-accuracy.json").write_text(
        json.dumps(
            {"accuracy": accuracy, "reference": OCR_PAGE, "ocr": text}, ensure_ascii=False, indent=2
        ),
        encoding="utf-8",
    )
    assert accuracy >= 0.95, (accuracy, text)


def _squeeze(text: str) -> str:
    return "".join(text.split())


@pytest.mark.parametrize("builtin", [False, True], ids=["installed-font", "STSong-Light"])
def test_text_layer_of_the_test_pdfs_reads_back_exactly(tmp_path, builtin):
    """The holding's PDFs are searched by their text: it must come back character for
    character, in WenQuanYi Micro Hei (embedded) and in the built-in CID font used without it
    (pdfminer maps its Adobe-GB1 codes back through the CMaps it ships)."""
    if not builtin and not FONT.exists():
        pytest.skip(f"{FONT} is not installed: apt-get install fonts-wqy-microhei")
    hh = HOUSEHOLDS[0]
    texts = {
        "policy.pdf": ("关于做好因病致贫家庭医疗救助工作的通知", POLICY_TEXT),
        "household.pdf": (f"{hh.head}贫困户申请书",
                          f"申请人{hh.head}，公民身份号码{hh.id_number}，联系电话{hh.phone}，"
                          f"家住{hh.village}。因{hh.disease}长期治疗，家庭困难。"),
    }
    files = {}
    for name, (title, body) in texts.items():
        text_pdf(tmp_path / name, title, body, font=pdf_font(builtin=builtin))
        files[name] = (tmp_path / name, "application/pdf")
    results = fulltext.extract_texts(files, fulltext.Options(ocr=False))
    for name, (title, body) in texts.items():
        assert (results[name].method, results[name].status) == ("text-layer", "passed")
        assert _squeeze(results[name].text) == _squeeze(title + body), name


def test_every_supported_kind_is_read(tmp_path):
    import docx
    import openpyxl

    files = {}
    text_pdf(tmp_path / "a.pdf", "标题", POLICY_TEXT)
    files["a.pdf"] = (tmp_path / "a.pdf", "application/pdf")
    document = docx.Document()
    document.add_paragraph("帮扶计划：发展牛羊养殖")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "帮扶责任人", "县财政局"
    document.save(tmp_path / "b.docx")
    files["b.docx"] = (tmp_path / "b.docx", fulltext.DOCX_MIME)
    book = openpyxl.Workbook()
    book.active.append(["户数", "脱贫人口"])
    book.active.append([125, 410])
    book.save(tmp_path / "c.xlsx")
    files["c.xlsx"] = (tmp_path / "c.xlsx", fulltext.XLSX_MIME)
    (tmp_path / "d.txt").write_bytes("低保兜底".encode("gb18030"))
    files["d.txt"] = (tmp_path / "d.txt", "text/plain")
    (tmp_path / "e.mp3").write_bytes(b"ID3" + bytes(100))
    files["e.mp3"] = (tmp_path / "e.mp3", "audio/mpeg")
    results = fulltext.extract_texts(files, fulltext.Options())
    assert results["a.pdf"].method == "text-layer" and "光伏" in fulltext.index_text(
        results["a.pdf"].text
    )
    assert "县财政局" in results["b.docx"].text and "牛羊养殖" in results["b.docx"].text
    assert "脱贫人口" in results["c.xlsx"].text and "410" in results["c.xlsx"].text
    assert results["d.txt"].text == "低保兜底"
    assert (
        results["e.mp3"].status == "not-checked" and "no text extractor" in results["e.mp3"].reason
    )
    assert all(results[k].status == "passed" for k in ("a.pdf", "b.docx", "c.xlsx"))


@needs_pdf_ocr
def test_scanned_pdf_is_read_by_ocr(tmp_path):
    scan_pdf(tmp_path / "scan.pdf", SCAN_TEXT)
    result = fulltext.extract_texts({"scan.pdf": (tmp_path / "scan.pdf", "application/pdf")},
                                    fulltext.Options())["scan.pdf"]
    assert result.method == "ocr" and result.ocr_pages == 1 and result.status == "passed"
    assert "分红" in fulltext.index_text(result.text)


def _scan_and_image(tmp_path: Path) -> dict:
    scan_pdf(tmp_path / "scan.pdf", SCAN_TEXT)
    page_image("低保").save(tmp_path / "p.png")
    return {
        "scan.pdf": (tmp_path / "scan.pdf", "application/pdf"),
        "p.png": (tmp_path / "p.png", "image/png"),
    }


def test_ocr_switched_off_is_not_checked_with_a_reason(tmp_path):
    off = fulltext.extract_texts(_scan_and_image(tmp_path), fulltext.Options(ocr=False))
    assert {r.status for r in off.values()} == {"not-checked"}
    assert "switched off" in off["scan.pdf"].reason


def test_no_tesseract_is_not_checked_with_a_reason(tmp_path, monkeypatch):
    files = _scan_and_image(tmp_path)
    empty = tmp_path / "no-programs"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # tesseract and pdftoppm are nowhere
    fulltext.ocr_available.cache_clear()
    try:
        results = fulltext.extract_texts(files, fulltext.Options())
    finally:
        fulltext.ocr_available.cache_clear()
    assert all(r.status == "not-checked" and "tesseract is not installed" in r.reason
               for r in results.values()), results


def test_no_pdf_renderer_is_not_checked_with_a_reason(tmp_path, monkeypatch):
    """tesseract without poppler-utils: the scanned pages are not read, and the result says
    why (it is a missing tool, not a broken file)."""
    files = _scan_and_image(tmp_path)
    monkeypatch.setattr(fulltext, "ocr_available", lambda languages: None)
    which = shutil.which
    monkeypatch.setattr(fulltext.shutil, "which",
                        lambda name, *a, **k: None if name == "pdftoppm" else which(name, *a, **k))
    result = fulltext.extract_texts({"scan.pdf": files["scan.pdf"]},
                                    fulltext.Options())["scan.pdf"]
    assert result.status == "not-checked", result
    assert "pdftoppm" in result.reason and "poppler-utils" in result.reason


@needs_tesseract
def test_missing_language_model_is_not_checked_with_a_reason(tmp_path):
    files = _scan_and_image(tmp_path)
    missing = fulltext.extract_texts(files, fulltext.Options(languages="xyz_notalang"))
    assert all(r.status == "not-checked" and "xyz_notalang" in r.reason for r in missing.values())
    event = fulltext.premis_event(missing, ("dangan",), "2026-01-01T00:00:00+00:00")
    assert event.outcome == "not-checked" and "xyz_notalang" in event.outcome_detail


def test_broken_file_is_failed_not_skipped(tmp_path):
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.4 this is not a pdf")
    result = fulltext.extract_texts(
        {"bad.pdf": (tmp_path / "bad.pdf", "application/pdf")}, fulltext.Options()
    )["bad.pdf"]
    assert result.status == "failed" and result.reason


def test_index_text_masks_id_numbers_and_joins_broken_lines():
    text = "公民身份号码630121195402144291\n光\n伏电站"
    indexed = fulltext.index_text(text)
    assert "630121********4291" in indexed and "630121195402144291" not in indexed
    assert "光伏电站" in indexed


def test_derived_text_is_kept_in_the_aip_with_its_report(holding):
    home = holding.settings.home
    folder = home / "aips" / holding.general / "data/metadata/text"
    report = json.loads((folder / "extraction.json").read_text(encoding="utf-8"))
    files = {Path(f["path"]).name: f for f in report["files"]}
    text_layer = files["Q001-WS·2016-Y-FPB-0001.pdf"]
    assert (text_layer["method"], text_layer["status"]) == ("text-layer", "passed")
    assert "光伏" in (folder / "综合/Q001-WS·2016-Y-FPB-0001.pdf.txt").read_text(encoding="utf-8")
    scan = files["Q001-WS·2016-Y-FPB-0002.pdf"]
    engine = fulltext.ocr_available("chi_sim") or (
        None if shutil.which("pdftoppm") else "pdftoppm (poppler-utils) is not installed")
    if engine:  # never a silent pass: the scan's pages are reported as not read, and why
        assert scan["status"] == "not-checked" and engine in scan["reason"], scan
    else:  # the AIP was stored before OCR: the scan's page is recorded as queued
        assert (scan["reader"], scan["status"], scan["pending_pages"]) == ("pypdf", "pending", [1])
    assert text_layer["reader"] == "pypdf" and text_layer["ocr_page_numbers"] == []
    manifest = (home / "aips" / holding.general / "manifest-sha256.txt").read_text(encoding="utf-8")
    assert "data/metadata/text/extraction.json" in manifest


@needs_pdf_ocr
def test_ocr_text_of_the_scan_is_kept_beside_the_aip(holding):
    """The text job's OCR text is in the catalogue with the pages, engine and language it was
    read with; the stored AIP is not rewritten (its text folder holds no text of the scan)."""
    from sqlalchemy import select

    from storage.catalogue import Catalogue, models

    with Catalogue.open(holding.settings).session() as s:
        rows = s.scalars(select(models.DerivedText)
                         .where(models.DerivedText.aip_uuid == holding.general)).all()
        found = {row.path: (row.ocr_pages, row.engine, row.languages, row.text) for row in rows}
    pages, engine, languages, text = found["综合/Q001-WS·2016-Y-FPB-0002.pdf"]
    assert pages == [1] and engine == fulltext.tesseract_version() and languages == "chi_sim"
    assert "合作社" in text
    assert "综合/Q001-WS·2016-Y-FPB-0001.pdf" not in found   # a text layer is never OCR'd
    folder = holding.settings.home / "aips" / holding.general / "data/metadata/text"
    assert not (folder / "综合/Q001-WS·2016-Y-FPB-0002.pdf.txt").exists()
