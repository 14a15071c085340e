"""Full text off the ingest's critical path: the ingest returns with OCR queued and the
records marked pending in search; the text job OCRs only pages without a text layer, records
which pages with which tesseract and language, and makes the OCR-only words searchable. The
OCR tests skip, naming the Debian packages, where tesseract, chi_sim, pdftoppm or the font
that draws their pages is missing."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "access"))

from holdings import ocr_unavailable, pdf_font, scan_pdf, text_pdf  # noqa: E402
from transfers import HEADER  # noqa: E402

from ingest import fulltext  # noqa: E402

needs_pdf_ocr = pytest.mark.skipif(bool(ocr_unavailable(scanned_pdf=True)),
                                   reason=ocr_unavailable(scanned_pdf=True) or "")
needs_tesseract = pytest.mark.skipif(
    bool(fulltext.ocr_available("chi_sim")),
    reason=f"{fulltext.ocr_available('chi_sim')}: apt-get install tesseract-ocr "
           "tesseract-ocr-chi-sim")

TEXT_LAYER = "关于光伏扶贫电站收益分配的通知。各村收益优先用于公益岗位和小型公益事业。"
# words found in the scan only: an ingest without OCR cannot find them
SCAN_WORDS = "养殖合作社分红名单。每户入股两头，年底按股分红。"


def _transfer(root: Path) -> Path:
    """A household volume of two PDFs: one with a text layer, one scan without."""
    root.mkdir(parents=True)
    (root / "户卷").mkdir()
    text_pdf(root / "户卷/001-通知.pdf", "收益分配通知", TEXT_LAYER, pdf_font(builtin=True))
    scan_pdf(root / "户卷/002-分红名单.pdf", SCAN_WORDS)
    rows = [[str(n), f"Q001-JF·02·630121100201-0001-{n:03d}", "", "某村委会", title,
             "20160315", "限制", "1", "", "永久", "02", "因病", name]
            for n, title, name in [(1, "收益分配通知", "户卷/001-通知.pdf"),
                                   (2, "分户名单扫描件", "户卷/002-分红名单.pdf")]]
    with open(root / "归档文件目录.csv", "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return root


def _search(cli, *words: str) -> dict:
    result = cli("search", "--json", *words)
    assert result.code == 0, result.err
    return json.loads(result.out)


@needs_tesseract
def test_ingest_returns_with_text_pending_and_search_marks_it(home, cli, tmp_path):
    transfer = _transfer(tmp_path / "transfer")
    result = cli("ingest", "--json", str(transfer))
    assert result.code == 0, result.err + result.out
    ingested = json.loads(result.out)
    assert len(ingested["text_jobs"]) == 1
    from storage.catalogue import Catalogue
    from storage.jobs import JobQueue

    job = JobQueue(Catalogue.open(home)).get(ingested["text_jobs"][0])
    assert job["status"] == "queued" and job["kind"] == "fulltext"
    assert [f["path"] for f in job["payload"]["files"]] == ["户卷/002-分红名单.pdf"]
    # the text layer is searchable at once, the record says the rest is pending
    found = _search(cli, "光伏")
    assert found["total"] == 1 and found["hits"][0]["text_pending"] is False
    found = _search(cli, "扫描件")
    assert found["total"] == 1 and found["hits"][0]["text_pending"] is True
    plain = cli("search", "扫描件")
    assert "全文待识别" in plain.out
    assert _search(cli, "入股")["total"] == 0


@needs_pdf_ocr
def test_after_the_text_job_a_word_only_ocr_finds_is_found(home, cli, tmp_path):
    transfer = _transfer(tmp_path / "transfer")
    result = cli("ingest", "--json", str(transfer))
    assert result.code == 0, result.err + result.out
    assert _search(cli, "入股")["total"] == 0
    worked = cli("worker", "--once", "--json")
    assert worked.code == 0, worked.err
    done = json.loads(worked.out)
    assert [j["status"] for j in done["jobs"] if j["kind"] == "fulltext"] == ["done"]
    found = _search(cli, "入股")
    assert found["total"] == 1, found
    assert found["hits"][0]["text_pending"] is False
    assert _search(cli, "扫描件")["hits"][0]["text_pending"] is False


@needs_pdf_ocr
def test_wait_for_text_runs_the_jobs_before_returning(home, cli, tmp_path):
    transfer = _transfer(tmp_path / "transfer")
    result = cli("ingest", "--json", "--wait-for-text", str(transfer))
    assert result.code == 0, result.err + result.out
    assert json.loads(result.out)["text"] == {"done": 1, "failed": 0}
    assert _search(cli, "入股")["total"] == 1


@needs_pdf_ocr
def test_a_page_with_a_text_layer_is_never_ocrd(home, cli, tmp_path):
    """The text job's record names the scan's page only; the PDF with a text layer was read
    from it (pypdf) and is in no OCR record, in the AIP or in the catalogue."""
    from sqlalchemy import select

    from storage.catalogue import Catalogue, models

    transfer = _transfer(tmp_path / "transfer")
    result = cli("ingest", "--json", "--wait-for-text", str(transfer))
    assert result.code == 0, result.err + result.out
    aip = json.loads(result.out)["aips"][0]["uuid"]
    extraction = json.loads((home.home / "aips" / aip / "data/metadata/text/extraction.json")
                            .read_text(encoding="utf-8"))
    files = {f["path"]: f for f in extraction["files"]}
    layer = files["户卷/001-通知.pdf"]
    assert (layer["reader"], layer["ocr_page_numbers"], layer["pending_pages"]) == ("pypdf", [], [])
    assert files["户卷/002-分红名单.pdf"]["pending_pages"] == [1]
    with Catalogue.open(home).session() as s:
        rows = s.scalars(select(models.DerivedText).where(models.DerivedText.aip_uuid == aip)).all()
        records = [(r.path, r.ocr_pages, r.engine, r.languages) for r in rows]
        events = s.scalars(select(models.Event).where(models.Event.aip_uuid == aip,
                                                      models.Event.type == "metadata extraction"))
        details = [e.detail for e in events]
    assert records == [("户卷/002-分红名单.pdf", [1], fulltext.tesseract_version(), "chi_sim")]
    assert any("OCR of 1 page(s)" in d and fulltext.tesseract_version() in d for d in details)


def test_page_decision_text_layer_versus_scan(tmp_path):
    """A text page is kept, a scan page (image over the whole page, no text) is OCR'd: the
    decision from the text layer's characters and the image coverage pypdf measured."""
    text_pdf(tmp_path / "text.pdf", "通知", TEXT_LAYER, pdf_font(builtin=True))
    scan_pdf(tmp_path / "scan.pdf", SCAN_WORDS)
    reader, (text_page,) = fulltext._pdf_pages(tmp_path / "text.pdf")
    _, (scan_page,) = fulltext._pdf_pages(tmp_path / "scan.pdf")
    assert reader == "pypdf"
    assert not fulltext.needs_ocr(text_page, 10) and text_page.image_coverage == 0
    assert fulltext.needs_ocr(scan_page, 10) and scan_page.image_coverage > 0.99


def test_ocr_off_queues_nothing(home, cli, tmp_path, monkeypatch):
    monkeypatch.setenv("DANGAN_FULLTEXT_OCR", "false")
    transfer = _transfer(tmp_path / "transfer")
    result = cli("ingest", "--json", str(transfer))
    assert result.code == 0, result.err + result.out
    assert json.loads(result.out)["text_jobs"] == []
    assert _search(cli, "扫描件")["hits"][0]["text_pending"] is False


@needs_pdf_ocr
def test_portal_results_mark_pending_text_until_the_job_ran(home, cli, tmp_path):
    from access.portal import create_app

    transfer = _transfer(tmp_path / "transfer")
    assert cli("ingest", "--json", str(transfer)).code == 0
    app = create_app(home, {"TESTING": True, "WTF_CSRF_ENABLED": False})
    client = app.test_client()
    app.test_login(client, "archivist", username="archivist")
    page = client.get("/search?q=扫描件").get_data(as_text=True)
    assert "分户名单扫描件" in page and "全文待识别" in page
    assert cli("worker", "--once").code == 0
    page = client.get("/search?q=扫描件").get_data(as_text=True)
    assert "分户名单扫描件" in page and "全文待识别" not in page
    assert "分户名单扫描件" in client.get("/search?q=入股").get_data(as_text=True)
