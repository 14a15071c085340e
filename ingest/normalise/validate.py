"""Checks on a derivative before it is kept: it opens, is what it should be, lost nothing.

``opens``     PDF: pikepdf (pypdf when pikepdf is not installed); image: Pillow decodes it;
              XLSX: openpyxl reads it; audio/video: ffprobe finds a stream.
``format``    the output identified again (as ingest identifies every file) is one of the
              PUIDs the conversion names (always run when it names any).
``pages``     a PDF made from a PDF has as many pages as its source.
``text``      the share of the source's characters (Chinese characters, letters and digits,
              counted with their repeats) found again in the output's text is at least the
              policy's threshold; the texts come from ingest's own text extraction.
``pdfa``      the XMP metadata names the PDF/A part and conformance of the target
              (``pdfaid:part`` 2, ``pdfaid:conformance`` B for PDF/A-2b). This is the PDF/A
              *identification*, not a conformance check (veraPDF is not available here).
``duration``  audio/video: the output's duration is the source's within 1 s (or 2 %).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ingest import fulltext
from ingest.formats import identify
from ingest.normalise.actions import Action, Check, Derivative
from ingest.normalise.tools import program_path

_COUNTED = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaffA-Za-z0-9]")
_TEXT_OPTIONS = fulltext.Options(ocr=False, defer_ocr=False)
_PDFA_NS = "http://www.aiim.org/pdfa/ns/id/"


def text_of(path: Path, mime: str | None = None) -> fulltext.TextResult:
    """The text of a file by ingest's extractors, without OCR."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return fulltext.extract_file(Path(path).name, path, mime, _TEXT_OPTIONS, pool)


def overlap(source: str, output: str) -> float:
    """Share of the source's counted characters (CJK, letters, digits) found in ``output``.

    >>> overlap("贫困户申请书", "贫困户 申请书。")
    1.0
    >>> round(overlap("贫困户申请书", "贫困"), 2)
    0.33
    """
    wanted = Counter(_COUNTED.findall(source))
    if not wanted:
        return 1.0
    found = Counter(_COUNTED.findall(output))
    return sum(min(n, found[c]) for c, n in wanted.items()) / sum(wanted.values())


def validate(action: Action, derivative: Derivative, source_text: str | None = None,
             source_mime: str | None = None) -> Derivative:
    """Run the action's checks on a made derivative and set its outcome.

    Arguments:
        action: what was asked (its conversion names the checks and the threshold).
        derivative: from :func:`ingest.normalise.convert.run_batch`; left as it is unless its
            outcome is ``passed``.
        source_text: the source's text when already extracted (else it is extracted here).
        source_mime: the source's MIME type, for the extractor.

    Returns:
        The same derivative, identified again, with its checks; outcome ``failed`` when one
        failed (the first failure's detail becomes its message).
    """
    if derivative.outcome != "passed" or derivative.output is None:
        return derivative
    output = derivative.output
    found = identify([output])[0]
    derivative.puid, derivative.mime = found.puid, found.mime
    derivative.format_name, derivative.format_version = found.format_name, found.format_version
    conversion = action.conversion
    checks = []
    if conversion.puids:
        checks.append(Check("format", "passed" if found.puid in conversion.puids else "failed",
                            f"identified as {found.puid or 'unidentified'} "
                            f"({found.format_name or '?'} {found.format_version or ''}".rstrip()
                            + f"); expected {', '.join(sorted(conversion.puids))}"))
    kind = _kind(output)
    for name in conversion.checks:
        if name == "opens":
            checks.append(_opens(output, kind))
        elif name == "pages":
            checks.append(_pages(derivative.source, output, kind))
        elif name == "text":
            checks.append(_text(derivative.source, output, conversion.text_similarity,
                                source_text, source_mime))
        elif name == "pdfa":
            checks.append(_pdfa(output, conversion.target))
        elif name == "duration":
            checks.append(_duration(derivative.source, output))
    derivative.checks = [*derivative.checks, *checks]
    failed = [c for c in checks if c.status == "failed"]
    if failed:
        derivative.outcome = "failed"
        derivative.message = "; ".join(f"{c.name}: {c.detail}" for c in failed)
    return derivative


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    return {".pdf": "pdf", ".jpg": "image", ".jpeg": "image", ".png": "image", ".tif": "image",
            ".xlsx": "xlsx", ".mp4": "media"}.get(suffix, "other")


def _pdf_page_count(path: Path) -> int:
    try:
        import pikepdf
    except ImportError:
        from pypdf import PdfReader

        return len(PdfReader(str(path)).pages)
    with pikepdf.open(path) as pdf:
        return len(pdf.pages)


def _opens(path: Path, kind: str) -> Check:
    try:
        if kind == "pdf":
            pages = _pdf_page_count(path)
            return Check("opens", "passed" if pages else "failed", f"PDF with {pages} page(s)")
        if kind == "image":
            from PIL import Image

            with Image.open(path) as image:
                image.load()
                return Check("opens", "passed", f"{image.format} {image.width}×{image.height}")
        if kind == "xlsx":
            import openpyxl

            book = openpyxl.load_workbook(path, read_only=True)
            names = book.sheetnames
            book.close()
            return Check("opens", "passed", f"XLSX with {len(names)} sheet(s)")
        if kind == "media":
            info = _probe(path)
            streams = [s.get("codec_name") for s in info.get("streams", [])]
            return Check("opens", "passed" if streams else "failed",
                         f"streams: {', '.join(map(str, streams)) or 'none'}")
    except Exception as exc:  # noqa: BLE001 - an output that does not open fails the check
        return Check("opens", "failed", f"{type(exc).__name__}: {exc}"[:300])
    return Check("opens", "not-checked", f"no reader for {path.suffix}")


def _pages(source: Path, output: Path, kind: str) -> Check:
    if kind != "pdf" or _kind(Path(str(source))) != "pdf":
        return Check("pages", "not-checked", "the source has no fixed pages to compare")
    try:
        before, after = _pdf_page_count(source), _pdf_page_count(output)
    except Exception as exc:  # noqa: BLE001
        return Check("pages", "failed", f"{type(exc).__name__}: {exc}"[:300])
    return Check("pages", "passed" if before == after else "failed",
                 f"{after} page(s), source {before}")


def _text(source: Path, output: Path, threshold: float, source_text: str | None,
          source_mime: str | None) -> Check:
    if source_text is None:
        extracted = text_of(source, source_mime)
        if extracted.status == "failed" or (extracted.status == "not-checked" and not extracted.text):
            return Check("text", "not-checked",
                         f"source text not readable: {extracted.reason or extracted.status}")
        source_text = extracted.text
    if not _COUNTED.search(source_text):
        return Check("text", "not-checked", "the source holds no text to compare")
    result = text_of(output)
    if result.status == "failed":
        return Check("text", "failed", f"output text not readable: {result.reason}")
    share = overlap(source_text, result.text)
    return Check("text", "passed" if share >= threshold else "failed",
                 f"{share:.1%} of the source's {len(_COUNTED.findall(source_text))} characters "
                 f"found again (threshold {threshold:.0%})")


def _pdfa(path: Path, target: str) -> Check:
    wanted = re.fullmatch(r"PDF/A-(\d)([a-zA-Z])", target)
    try:
        import pikepdf
    except ImportError:
        return Check("pdfa", "not-checked", "pikepdf is not installed (pip install pikepdf)")
    try:
        with pikepdf.open(path) as pdf:
            meta = pdf.open_metadata()
            part = meta.get(f"{{{_PDFA_NS}}}part")
            conformance = meta.get(f"{{{_PDFA_NS}}}conformance")
    except Exception as exc:  # noqa: BLE001
        return Check("pdfa", "failed", f"XMP not readable: {type(exc).__name__}: {exc}"[:300])
    if part is None:
        return Check("pdfa", "failed", "no pdfaid:part in the XMP metadata")
    said = f"XMP pdfaid:part {part}, conformance {conformance or '-'}"
    if wanted and (str(part) != wanted.group(1)
                   or str(conformance or "").upper() != wanted.group(2).upper()):
        return Check("pdfa", "failed", f"{said}; {target} expected")
    return Check("pdfa", "passed", f"{said} (identification only, not a conformance check)")


def _probe(path: Path) -> dict:
    program = program_path("ffprobe")
    if program is None:
        raise RuntimeError("ffprobe not on PATH (apt-get install ffmpeg)")
    done = subprocess.run([program, "-v", "error", "-show_format", "-show_streams", "-of",
                           "json", str(path)], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip()[:300] or f"ffprobe exit {done.returncode}")
    return json.loads(done.stdout or "{}")


def _duration(source: Path, output: Path) -> Check:
    try:
        before = float(_probe(source)["format"]["duration"])
        after = float(_probe(output)["format"]["duration"])
    except Exception as exc:  # noqa: BLE001
        return Check("duration", "not-checked" if "ffprobe not" in str(exc) else "failed",
                     f"{type(exc).__name__}: {exc}"[:300])
    ok = abs(before - after) <= max(1.0, 0.02 * before)
    return Check("duration", "passed" if ok else "failed",
                 f"{after:.2f} s, source {before:.2f} s")
