"""Normalisation with the real tools: every default rule on a real file, the failures that
must be reported (a broken source, a missing tool, an output that lost the text)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import ingest.normalise as normalise
from ingest.formats import identify
from policies import load_preservation_policy, load_settings
from tests.ingest import normalise_inputs as inputs


@pytest.fixture(scope="module")
def policy():
    return load_preservation_policy(load_settings("/nonexistent-dangan-home"))


def made(policy, source: Path, workdir: Path, role: str = "preservation"):
    fmt = identify([source])[0]
    actions = [a for a in normalise.plan(policy, fmt.puid, source.name) if a.role == role]
    assert actions, f"no {role} action for {source.name} ({fmt.puid})"
    before = source.read_bytes()
    derivative = normalise.run(policy, actions[0], source, workdir, source_mime=fmt.mime)
    assert source.read_bytes() == before, "the source was changed"
    return derivative


def checks(derivative) -> dict[str, str]:
    return {c.name: c.status for c in derivative.checks}


def test_docx_becomes_pdfa_2b_with_its_text(policy, tmp_path):
    inputs.need("soffice", "libreoffice-writer-nogui")
    d = made(policy, inputs.docx(tmp_path / "申请书.docx"), tmp_path / "work")
    assert d.kept, d.message
    assert d.puid == "fmt/477" and d.tool == "libreoffice"
    assert d.tool_version.startswith("LibreOffice")
    assert checks(d) == {"format": "passed", "opens": "passed", "text": "passed", "pdfa": "passed"}
    assert "soffice" in d.command[0] and "--convert-to" in d.command


def test_doc_becomes_pdfa_2b(policy, tmp_path):
    source = inputs.doc(tmp_path)
    assert identify([source])[0].puid == "fmt/40"
    d = made(policy, source, tmp_path / "work")
    assert d.kept, d.message
    assert d.puid == "fmt/477"
    # a .doc has no extractor of its own: the text is not compared, and says so
    assert checks(d)["text"] == "not-checked"


def test_pdf_becomes_pdfa_2b_by_ghostscript_pages_and_text_kept(policy, tmp_path):
    inputs.need("gs", "ghostscript")
    source = inputs.office_pdf(tmp_path, pages=2)
    assert identify([source])[0].puid not in ("fmt/476", "fmt/477", "fmt/478")
    d = made(policy, source, tmp_path / "work")
    assert d.kept, d.message
    assert d.tool == "ghostscript" and d.puid == "fmt/477"
    assert checks(d) == {"format": "passed", "opens": "passed", "pages": "passed",
                         "text": "passed", "pdfa": "passed"}


@pytest.mark.parametrize("embedded", [False, True], ids=["STSong-Light", "WenQuanYi-subset"])
def test_a_pdf_whose_text_ghostscript_loses_fails_validation(policy, tmp_path, embedded):
    """Ghostscript 10.00's PDF/A of a reportlab PDF keeps the glyphs but not the text, whether
    the Chinese font is the unembedded STSong-Light or a subset of WenQuanYi: the text check
    finds it and the copy is not kept."""
    inputs.need("gs", "ghostscript")
    source = inputs.pdf(tmp_path / "未嵌入字体.pdf", embedded=embedded)
    d = made(policy, source, tmp_path / "work")
    assert d.outcome == "failed" and not d.kept
    assert checks(d)["text"] == "failed"
    assert "text:" in d.message and "threshold 90%" in d.message


def test_a_scanned_pdf_is_made_pdfa_by_ocrmypdf(policy, tmp_path):
    inputs.need("gs", "ghostscript")
    inputs.need("tesseract", "tesseract-ocr")
    if not shutil.which("ocrmypdf") and not (Path(os.sys.executable).parent / "ocrmypdf").exists():
        pytest.skip("ocrmypdf not installed (pip install ocrmypdf)")
    d = made(policy, inputs.scan_pdf(tmp_path / "扫描件.pdf"), tmp_path / "work")
    assert d.tool == "ocrmypdf", d.tool
    assert d.kept, d.message
    assert d.puid in ("fmt/477", "fmt/476", "fmt/478")
    text = normalise.text_of(d.output).text
    assert normalise.overlap("贫困户申请", text) >= 0.6, text


def test_xls_becomes_xlsx(policy, tmp_path):
    source = inputs.xls(tmp_path)
    assert identify([source])[0].puid in ("fmt/59", "fmt/61", "fmt/62")
    d = made(policy, source, tmp_path / "work")
    assert d.kept, d.message
    assert d.puid == "fmt/214"
    assert checks(d)["opens"] == "passed"


def test_tiff_is_kept_with_a_jpeg_access_copy(policy, tmp_path):
    source = inputs.tiff(tmp_path / "扫描.tif")
    actions = normalise.plan(policy, identify([source])[0].puid, source.name)
    assert [a.role for a in actions] == ["access"]
    d = made(policy, source, tmp_path / "work", role="access")
    assert d.kept, d.message
    assert d.puid in ("fmt/43", "fmt/44", "fmt/645") and d.tool == "pillow"


def test_jpeg_and_ofd_are_kept_and_served_as_they_are(policy):
    assert normalise.plan(policy, "fmt/43", "照片.jpg") == []
    assert normalise.plan(policy, "x-fmt/263", "公文.ofd") == []


def test_video_gets_an_h264_access_copy(policy, tmp_path):
    source = inputs.video(tmp_path / "会议.mpg")
    d = made(policy, source, tmp_path / "work", role="access")
    assert d.kept, d.message
    assert d.puid == "fmt/199"
    assert checks(d) == {"format": "passed", "opens": "passed", "duration": "passed"}


def test_a_corrupt_docx_keeps_the_original_and_records_the_tool_message(policy, tmp_path):
    inputs.need("soffice", "libreoffice-writer-nogui")
    source = inputs.corrupt_docx(tmp_path / "损坏.docx")
    before = source.read_bytes()
    assert identify([source])[0].puid == "fmt/412"
    action = normalise.plan(policy, "fmt/412", source.name)[0]
    d = normalise.run(policy, action, source, tmp_path / "work")
    assert d.outcome == "failed" and d.output is None and not d.kept
    assert "libreoffice made no pdf" in d.message and "could not be loaded" in d.message
    assert source.read_bytes() == before


def test_a_missing_tool_is_reported_as_not_done(policy, tmp_path, monkeypatch):
    source = inputs.pdf(tmp_path / "申请书.pdf", embedded=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    action = normalise.plan(policy, "fmt/17", source.name)[0]
    d = normalise.run(policy, action, source, tmp_path / "work", source_text=inputs.TEXT)
    assert d.outcome == "not-checked" and not d.kept
    assert d.message.startswith("not normalised: tool ghostscript absent")
    event = normalise.premis_event(d, "00000000-0000-4000-8000-000000000000",
                                   "2026-01-01T00:00:00+00:00", (), ())
    assert event.outcome == "not-checked" and "absent" in event.outcome_detail


def test_a_batch_starts_libreoffice_once(policy, tmp_path):
    inputs.need("soffice", "libreoffice-writer-nogui")
    sources = [inputs.docx(tmp_path / f"件{n}.docx", f"{inputs.TEXT}{n}") for n in range(3)]
    jobs = [normalise.Job(normalise.plan(policy, "fmt/412", s.name)[0], s) for s in sources]
    made = normalise.run_batch(policy, jobs, tmp_path / "work")
    assert [d.outcome for d in made] == ["passed"] * 3
    # one command line for all three, each derivative naming its own file
    assert len({tuple(d.command[:-1]) for d in made}) == 1
    assert len({d.output for d in made}) == 3


@pytest.mark.parametrize("module", ["ingest.normalise", "ingest.normalise.actions",
                                    "ingest.normalise.validate", "policies.preservation",
                                    "storage.aip.versions"])
def test_the_docstring_examples_hold(module):
    import doctest
    import importlib

    found = doctest.testmod(importlib.import_module(module))
    assert found.attempted and not found.failed
