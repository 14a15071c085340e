"""Full text of the submitted files, kept as derived data in the AIP and indexed.

* PDF: the text layer (pdfminer.six), page by page; a page with (almost) no text is a scan and
  is rendered (poppler's ``pdftoppm``) and read by OCR.
* DOCX paragraphs and tables (python-docx), XLSX cells (openpyxl), plain text and CSV.
* Images (JPEG, PNG, TIFF): OCR.

OCR is tesseract with the ``chi_sim`` model, ``OMP_THREAD_LIMIT=1`` (tesseract's own threads
slow it down on small machines) and several pages at once, each page its own tesseract
process. Words tesseract is not confident of are dropped: a photograph or a damaged scan
gives no text rather than noise that 2-character queries would find.

Every file gets a result: ``passed`` (text found, or the format holds none), ``not-checked``
with the reason (no OCR engine or language model, OCR switched off, a format without an
extractor) or ``failed`` (the extractor broke on the file). The texts go into the AIP as
``data/metadata/text/<path under objects>.txt`` with ``extraction.json`` beside them.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ingest import jsontext
from ingest.staging import suffix as _suffix
from metadata_profiles.idnumbers import mask_id_numbers
from policies import Settings

TEXT_DIR = "data/metadata/text"
MIN_CONFIDENCE = 50  # tesseract word confidence (0-100) below which a word is noise
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef"
_CJK_GAP = re.compile(rf"(?<=[{_CJK}])[ \t]+(?=[{_CJK}])")
_CJK_BREAK = re.compile(rf"(?<=[{_CJK}])[ \t\r\f]*\n[ \t\r\f\n]*(?=[{_CJK}])")
IMAGE_MIMES = {"image/jpeg", "image/png", "image/tiff", "image/gif", "image/bmp"}
PLAIN_MIMES = {"text/plain", "text/csv"}
DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass(frozen=True)
class Options:
    """How text is extracted (from the ``[fulltext]`` settings)."""

    enabled: bool = True
    ocr: bool = True
    languages: str = "chi_sim"
    dpi: int = 300
    workers: int = 2
    timeout: int = 300
    min_chars_per_page: int = 10
    max_chars: int = 2_000_000
    defer_ocr: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> "Options":
        get = functools.partial(settings.get, "fulltext")
        return cls(
            bool(get("enabled")),
            bool(get("ocr")),
            str(get("ocr_languages")),
            settings.int("fulltext", "ocr_dpi"),
            settings.int("fulltext", "ocr_workers"),
            settings.int("fulltext", "ocr_timeout"),
            settings.int("fulltext", "min_chars_per_page"),
            settings.int("fulltext", "max_chars"),
            bool(get("defer_ocr")),
        )

    def inline(self) -> "Options":
        """The same options with OCR run at once (a text job, or ``defer_ocr = false``)."""
        return dataclasses.replace(self, defer_ocr=False)


@dataclass
class TextResult:
    """The text of one file and how it was obtained.

    Attributes:
        path: the file's path under ``data/objects``.
        method: text-layer, ocr, text-layer+ocr, docx, xlsx, plain or none.
        status: passed, not-checked, failed, or pending (OCR queued as a text job).
        reason: why (always set unless passed with text).
        pages: pages read (PDF), 1 for other files.
        ocr_pages: pages read by OCR.
        chars: characters of text found.
        reader: the PDF text-layer reader (pypdf, pdfminer, pdftotext).
        ocr_page_numbers: the 1-based pages read by OCR (1 for an image).
        pending_pages: the pages whose OCR is queued (1 for an image).
        ocr_engine: the tesseract version line, when OCR ran.
        ocr_languages: the tesseract language models used, when OCR ran.
    """

    path: str
    method: str
    status: str
    reason: str = ""
    pages: int = 0
    ocr_pages: int = 0
    chars: int = 0
    text: str = field(default="", repr=False)
    reader: str = ""
    ocr_page_numbers: list[int] = field(default_factory=list)
    pending_pages: list[int] = field(default_factory=list)
    ocr_engine: str = ""
    ocr_languages: str = ""

    def summary(self) -> dict[str, Any]:
        """The result without its text (for extraction.json and reports)."""
        return {name: getattr(self, name) for name in _SUMMARY_FIELDS}


_SUMMARY_FIELDS = tuple(f.name for f in fields(TextResult) if f.name != "text")


# -- OCR ------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def ocr_available(languages: str) -> str | None:
    """None when tesseract and every language model are there, else the reason they are not."""
    binary = shutil.which("tesseract")
    if binary is None:
        return "tesseract is not installed"
    try:
        listed = subprocess.run(
            [binary, "--list-langs"], capture_output=True, text=True, timeout=30
        ).stdout.split()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"tesseract does not run: {exc}"
    missing = [lang for lang in languages.split("+") if lang not in listed]
    return f"tesseract language model missing: {', '.join(missing)}" if missing else None


@functools.lru_cache(maxsize=1)
def tesseract_version() -> str:
    """The tesseract version line, or '' when it is absent (asked once per process)."""
    binary = shutil.which("tesseract")
    if not binary:
        return ""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    return (out.stdout or out.stderr).splitlines()[0].strip() if (out.stdout or out.stderr) else ""


def _tsv_text(tsv: str) -> str:
    """Rebuild text from tesseract's TSV, dropping low-confidence words."""
    lines: dict[tuple[str, ...], list[str]] = {}
    for row in tsv.splitlines()[1:]:
        cols = row.split("\t")
        if len(cols) < 12 or not cols[11].strip():
            continue
        try:
            confidence = float(cols[10])
        except ValueError:
            continue
        if confidence >= MIN_CONFIDENCE:
            lines.setdefault(tuple(cols[1:5]), []).append(cols[11])
    text = "\n".join(" ".join(words) for words in lines.values())
    return _CJK_GAP.sub("", text)


def ocr_image(image: Path, options: Options) -> str:
    """OCR one image file; returns its text.

    Raises:
        RuntimeError: tesseract failed or timed out.
    """
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    try:
        done = subprocess.run(
            ["tesseract", str(image), "stdout", "-l", options.languages, "--psm", "3", "tsv"],
            capture_output=True,
            text=True,
            env=env,
            timeout=options.timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"tesseract timed out after {options.timeout} s") from exc
    if done.returncode != 0:
        raise RuntimeError(f"tesseract: {done.stderr.strip()[-300:]}")
    return _tsv_text(done.stdout)


def _render_page(pdf: Path, page: int, dpi: int, folder: Path) -> Path:
    stem = folder / f"p{page}"
    subprocess.run(
        [
            "pdftoppm",
            "-f",
            str(page),
            "-l",
            str(page),
            "-r",
            str(dpi),
            "-gray",
            "-png",
            "-singlefile",
            str(pdf),
            str(stem),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return stem.with_suffix(".png")


def _renderer_missing() -> str | None:
    """Why PDF pages cannot be rendered for OCR (a missing tool), or None."""
    return None if shutil.which("pdftoppm") else "pdftoppm (poppler-utils) is not installed"


def ocr_pdf_page(pdf: Path, page: int, options: Options) -> str:
    """Render one 1-based page of a PDF (poppler's ``pdftoppm``) and OCR it; returns its text.

    Raises:
        RuntimeError: pdftoppm is missing, or tesseract failed.
    """
    missing = _renderer_missing()
    if missing:
        raise RuntimeError(missing)
    with tempfile.TemporaryDirectory(prefix="dangan-ocr-") as tmp:
        return ocr_image(_render_page(pdf, page, options.dpi, Path(tmp)), options)


def ocr_pdf_pages(
    pdf: Path, pages: list[int], options: Options, pool: ThreadPoolExecutor
) -> dict[int, str]:
    """OCR the given 1-based pages of a PDF, several at once; returns page -> text."""
    missing = _renderer_missing()
    if missing:
        raise RuntimeError(missing)
    return dict(zip(pages, pool.map(lambda page: ocr_pdf_page(pdf, page, options), pages)))


# -- extractors -----------------------------------------------------------------------------


@dataclass
class PdfPage:
    """One PDF page's text layer and what the page holds.

    Attributes:
        text: the text layer's text.
        area: the page's area (PDF points squared, from its media box).
        image_area: the area images are drawn over (overlaps counted twice; 0 if not known).
    """

    text: str
    area: float = 0.0
    image_area: float = 0.0

    @property
    def image_coverage(self) -> float:
        """Share of the page covered by images (0 to 1)."""
        return min(1.0, self.image_area / self.area) if self.area else 0.0


def _pypdf_pages(path: Path) -> list[PdfPage]:
    """Text layer by pypdf, with the area images cover (one pass over each content stream)."""
    import pypdf

    pages = []
    for page in pypdf.PdfReader(str(path)).pages:
        resources = page.get("/Resources") or {}
        xobjects = resources.get_object().get("/XObject") or {} if resources else {}
        xobjects = xobjects.get_object() if xobjects else {}
        covered = [0.0]

        def visit(operator: bytes, operands: list, cm: list, _tm: list) -> None:
            if operator == b"Do" and operands:
                xobject = xobjects.get(operands[0])
                if xobject is not None and xobject.get_object().get("/Subtype") == "/Image":
                    covered[0] += abs(cm[0] * cm[3] - cm[1] * cm[2])

        text = page.extract_text(visitor_operand_before=visit) or ""
        box = page.mediabox
        pages.append(PdfPage(text, abs(float(box.width) * float(box.height)), covered[0]))
    return pages


def _pdfminer_pages(path: Path) -> list[PdfPage]:
    """Text layer by pdfminer.six with layout analysis off (images not measured)."""
    import io

    from pdfminer.converter import TextConverter
    from pdfminer.pdfinterp import PDFPageInterpreter, PDFResourceManager
    from pdfminer.pdfpage import PDFPage

    manager = PDFResourceManager(caching=True)
    pages = []
    with open(path, "rb") as handle:
        for page in PDFPage.get_pages(handle):
            out = io.StringIO()
            device = TextConverter(manager, out, laparams=None)
            PDFPageInterpreter(manager, device).process_page(page)
            device.close()
            x0, y0, x1, y1 = page.mediabox
            pages.append(PdfPage(out.getvalue(), abs((x1 - x0) * (y1 - y0))))
    return pages


def _pdftotext_pages(path: Path) -> list[PdfPage]:
    """Text layer by poppler's ``pdftotext`` (page areas and images not measured)."""
    done = subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True,
                          check=True, timeout=300)
    texts = done.stdout.decode("utf-8", "replace").split("\f")
    if texts and not texts[-1].strip():
        texts.pop()
    return [PdfPage(t) for t in texts]


def _pdf_readers() -> list[tuple[str, Callable[[Path], list[PdfPage]]]]:
    """The text-layer readers installed, fastest first (bench/text_extraction.py: pypdf,
    then pdfminer.six with layout analysis off, then pdftotext; all exact on Chinese)."""
    import importlib.util

    readers: list[tuple[str, Callable[[Path], list[PdfPage]]]] = []
    if importlib.util.find_spec("pypdf"):
        readers.append(("pypdf", _pypdf_pages))
    if importlib.util.find_spec("pdfminer"):
        readers.append(("pdfminer", _pdfminer_pages))
    if shutil.which("pdftotext"):
        readers.append(("pdftotext", _pdftotext_pages))
    return readers


def _pdf_pages(path: Path) -> tuple[str, list[PdfPage]]:
    """The text layer of each page by the first reader that reads the file; the reader's name.

    Raises:
        RuntimeError: no reader is installed, or every one failed (the last error is named).
    """
    errors = []
    for name, reader in _pdf_readers():
        try:
            return name, reader(path)
        except Exception as exc:  # noqa: BLE001 - a reader that breaks hands over to the next
            errors.append(f"{name}: {type(exc).__name__}: {exc}"[:200])
    raise RuntimeError("; ".join(errors) or "no PDF text reader installed (pypdf, pdfminer.six, "
                       "pdftotext)")


def needs_ocr(page: PdfPage, min_chars: int) -> bool:
    """Whether a page lacks a usable text layer and is read by OCR.

    A page with fewer than ``min_chars`` characters (whitespace aside) has none; a page mostly
    covered by images (half of it or more) whose text layer holds fewer than five times that
    (a scan with a printed page number or stamp) is read by OCR too. Any other page keeps its
    text layer and is never OCR'd.

    >>> needs_ocr(PdfPage("第1页", 500_000, 500_000), 10)
    True
    >>> needs_ocr(PdfPage("贫困户申请书" * 10, 500_000, 0), 10)
    False
    """
    chars = len(re.sub(r"\s", "", page.text))
    if chars < min_chars:
        return True
    return page.image_coverage >= 0.5 and chars < 5 * min_chars


def _docx_text(path: Path) -> str:
    import docx

    document = docx.Document(str(path))
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts.append("\t".join(cell.text for cell in row.cells))
    return "\n".join(p for p in parts if p.strip())


def _xlsx_text(path: Path) -> str:
    import openpyxl

    book = openpyxl.load_workbook(str(path), read_only=True, data_only=True)
    try:
        parts = []
        for sheet in book.worksheets:
            parts.append(sheet.title)
            for row in sheet.iter_rows(values_only=True):
                cells = [str(v) for v in row if v not in (None, "")]
                if cells:
                    parts.append("\t".join(cells))
        return "\n".join(parts)
    finally:
        book.close()


def _plain_text(path: Path, limit: int) -> str:
    data = path.read_bytes()[: limit * 4]
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", "replace")


def _kind(path: Path | str, mime: str | None) -> str:
    suffix = _suffix(str(path)).lower()
    mime = (mime or "").split(";")[0]
    if mime == "application/pdf" or suffix == ".pdf":
        return "pdf"
    if mime == DOCX_MIME or suffix == ".docx":
        return "docx"
    if mime == XLSX_MIME or suffix == ".xlsx":
        return "xlsx"
    if mime in IMAGE_MIMES or suffix in (".jpg", ".jpeg", ".png", ".tif", ".tiff"):
        return "image"
    if mime in PLAIN_MIMES or suffix in (".txt", ".csv", ".xml"):
        return "plain"
    return "other"


def extract_file(
    rel: str, path: Path | str, mime: str | None, options: Options, pool: ThreadPoolExecutor
) -> TextResult:
    """The text of one file (never raises: a broken file gives a ``failed`` result)."""
    kind = _kind(path, mime)
    if kind == "other":
        return TextResult(rel, "none", "not-checked",
                          f"no text extractor for {mime or _suffix(str(path))}")
    path = Path(path)
    try:
        if kind == "pdf":
            return _extract_pdf(rel, path, options, pool)
        if kind == "image":
            return _extract_image(rel, path, options)
        reader: Callable[[Path], str] = {
            "docx": _docx_text,
            "xlsx": _xlsx_text,
            "plain": lambda p: _plain_text(p, options.max_chars),
        }[kind]
        text = reader(path)[: options.max_chars]
        return TextResult(
            rel,
            kind,
            "passed",
            "" if text.strip() else "no text in file",
            1,
            0,
            len(text),
            text,
        )
    except Exception as exc:  # noqa: BLE001 - any extractor failure is a finding, not a crash
        return TextResult(rel, kind, "failed", f"{type(exc).__name__}: {exc}"[:300], 0, 0, 0)


def _extract_image(rel: str, path: Path, options: Options) -> TextResult:
    missing = None if options.ocr else "OCR is switched off ([fulltext] ocr = false)"
    missing = missing or ocr_available(options.languages)
    if missing:
        return TextResult(rel, "ocr", "not-checked", missing, 1, 0, 0)
    if options.defer_ocr:
        return TextResult(rel, "ocr", "pending", "OCR queued as a text job", 1,
                          pending_pages=[1])
    text = ocr_image(path, options)[: options.max_chars]
    return TextResult(
        rel, "ocr", "passed", "" if text.strip() else "no legible text", 1, 1, len(text), text,
        ocr_page_numbers=[1], ocr_engine=tesseract_version(), ocr_languages=options.languages)


def _extract_pdf(rel: str, path: Path, options: Options, pool: ThreadPoolExecutor) -> TextResult:
    reader, layer = _pdf_pages(path)
    pages = [p.text for p in layer]
    scans = [n for n, page in enumerate(layer, 1) if needs_ocr(page, options.min_chars_per_page)]
    reason, done, pending = "", [], []
    if scans:
        missing = None if options.ocr else "OCR is switched off ([fulltext] ocr = false)"
        missing = missing or ocr_available(options.languages) or _renderer_missing()
        if missing:
            reason = f"{len(scans)} page(s) without a text layer not read: {missing}"
        elif options.defer_ocr:
            pending = scans
            reason = f"OCR of {len(scans)} page(s) queued as a text job"
        else:
            for page, text in ocr_pdf_pages(path, scans, options, pool).items():
                pages[page - 1] = text
            done = scans
    text = "\n\f".join(pages)[: options.max_chars]
    method = ("ocr" if len(done) == len(pages) else "text-layer+ocr") if done else "text-layer"
    status = "pending" if pending else "not-checked" if reason else "passed"
    return TextResult(rel, method, status, reason, len(pages), len(done), len(text), text,
                      reader=reader, ocr_page_numbers=done, pending_pages=pending,
                      ocr_engine=tesseract_version() if done else "",
                      ocr_languages=options.languages if done else "")


def extract_texts(
    files: Mapping[str, tuple[Path | str, str | None]],
    options: Options,
    progress: Callable[[str], None] | None = None,
) -> dict[str, TextResult]:
    """Extract the text of several files (path under objects -> (file, MIME type)).

    Files are read one after another; OCR pages run ``options.workers`` at a time, and
    whole images too.
    """
    results: dict[str, TextResult] = {}
    if not options.enabled:
        return {
            rel: TextResult(
                rel,
                "none",
                "not-checked",
                "full-text extraction is switched off ([fulltext] enabled = false)",
            )
            for rel in files
        }
    with ThreadPoolExecutor(max_workers=max(1, options.workers)) as pool:
        images = {rel: v for rel, v in files.items() if _kind(v[0], v[1]) == "image"}
        for rel, result in zip(
            images,
            pool.map(
                lambda item: extract_file(item[0], item[1][0], item[1][1], options, pool),
                images.items(),
            ),
        ):
            results[rel] = result
        for rel, (path, mime) in files.items():
            if rel not in results:
                results[rel] = extract_file(rel, path, mime, options, pool)
                if progress:
                    progress(rel)
    return results


def index_text(text: str) -> str:
    """Text as it goes into the search index: ID numbers masked (they are found only through
    a keyed hash, never as words), line breaks between Chinese characters removed (a PDF or
    a scan breaks lines inside words, and 光|伏 must still be found as 光伏), whitespace
    runs squeezed."""
    text = mask_id_numbers(text)
    text = _CJK_BREAK.sub("", text)
    return re.sub(r"[ \t\f\r]+", " ", text)


def write_texts(results: Mapping[str, TextResult], folder: Path) -> list[tuple[str, Path]]:
    """Write each text and ``extraction.json`` under ``folder`` (the AIP's text folder);
    return (bag path, file) pairs for the bag."""
    written = []
    for rel, result in sorted(results.items()):
        if not result.text.strip():
            continue
        target = folder / f"{rel}.txt"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(result.text, encoding="utf-8")
        written.append((f"{TEXT_DIR}/{rel}.txt", target))
    summary = folder / "extraction.json"
    summary.parent.mkdir(parents=True, exist_ok=True)
    summary.write_text(
        jsontext.dumps(
            {
                "files": [r.summary() for _, r in sorted(results.items())],
                "tesseract": tesseract_version(),
            },
            depth=2,
        ),
        encoding="utf-8",
    )
    written.append((f"{TEXT_DIR}/extraction.json", summary))
    return written


def counts(results: Mapping[str, TextResult]) -> dict[str, int]:
    """How many files passed, were not checked or failed, and how many pages were OCRed."""
    out = {"passed": 0, "not-checked": 0, "failed": 0, "pending": 0, "ocr_pages": 0}
    for result in results.values():
        out[result.status] += 1
        out["ocr_pages"] += result.ocr_pages
    return out


# -- the ingest step ------------------------------------------------------------------------


@dataclass
class UnitText:
    """The full text of one AIP's files: results by path under objects, and the derived
    files to put in the bag."""

    results: dict[str, TextResult]
    files: list[tuple[str, Path]]


def extract_unit(unit: Any, analysis: Any, folder: Path, options: Options) -> UnitText:
    """Extract the text of one unit's files (before they are moved into the bag) and write
    the derived files under ``folder``."""
    files: dict[str, tuple[Path | str, str | None]] = {}
    root, skip = str(analysis.staged.root), len(analysis.content_prefix)
    for staged in unit.files:
        rel = staged.rel[skip:]
        fmt = analysis.formats.get(rel)
        files[rel] = (f"{root}/{staged.rel}", fmt.mime if fmt else None)
    results = extract_texts(files, options)
    return UnitText(results, write_texts(results, folder))


def attach(
    documents: list[Any], item_of: Mapping[str, str], results: Mapping[str, TextResult]
) -> None:
    """Append each file's text (ID numbers masked) to its item's search document; a document
    whose item has a file with OCR still queued gets ``facets["fulltext"] = "pending"``."""
    by_item: dict[str, list[str]] = {}
    pending: set[str] = set()
    for rel, result in sorted(results.items()):
        item = item_of.get(rel)
        if item and result.text.strip():
            by_item.setdefault(item, []).append(index_text(result.text))
        if item and result.status == "pending":
            pending.add(item)
    for document in documents:
        extra = by_item.get(document.item_key or "")
        if extra:
            document.text = "\n".join([document.text, *extra])
        if (document.item_key or "") in pending:
            document.facets["fulltext"] = "pending"


def premis_event(results: Mapping[str, TextResult], agent_ids: tuple[str, ...], when: str) -> Any:
    """The PREMIS event recording the extraction (outcome not-checked when any file was
    not read, fail when an extractor broke)."""
    import uuid

    from storage.aip import Event

    tally = counts(results)
    outcome = ("fail" if tally["failed"] else
               "not-checked" if tally["not-checked"] or tally["pending"] else "pass")
    unread = [f"{r.path}: {r.reason}" for r in results.values() if r.status != "passed"]
    return Event(
        str(uuid.uuid4()),
        "metadata extraction",
        when,
        outcome,
        f"full text: {tally['passed']} files read ({tally['ocr_pages']} pages by OCR, "
        f"{tesseract_version() or 'no tesseract'}), {tally['not-checked']} not checked, "
        f"{tally['failed']} failed, {tally['pending']} with OCR queued as a text job; "
        f"texts in {TEXT_DIR}/",
        "; ".join(unread)[:2000],
        agent_ids,
    )
