"""PDF text-layer extraction: pypdf, pdfminer.six without and with layout analysis, and
poppler's ``pdftotext``, on the same Chinese PDFs of a sample transfer, in one run.

The PDFs are made the way ``dangan sample-transfer`` makes them; while they are written every
string drawn on a page is recorded, so each extractor's output is compared with the known
source text:

* ``lines found`` — drawn strings (whitespace removed) found in the extracted page text;
* ``chars exact`` — the page's characters, as a multiset, equal the drawn ones (nothing
  missing, nothing extra, no wrong code points);
* ``exact`` — every page of every PDF has both.

Image-only PDFs (scans) hold no drawn text and are left out. Usage::

    python -m bench.text_extraction [--households 5] [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bench.common import machine, save, table

_SPACE = re.compile(r"\s+")


def _squeeze(text: str) -> str:
    return _SPACE.sub("", text)


def make_corpus(out: Path, households: int) -> dict[Path, list[list[str]]]:
    """Write a sample transfer to ``out``; return each text PDF with its drawn strings per page."""
    from reportlab.pdfgen import canvas as rl_canvas

    from ingest import sample_transfer

    drawn: dict[int, list[list[str]]] = {}
    by_digest: dict[str, list[list[str]]] = {}
    originals = {name: getattr(rl_canvas.Canvas, name)
                 for name in ("drawString", "drawCentredString", "drawRightString", "showPage")}

    def recorder(name: str) -> Callable:
        original = originals[name]

        def record(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            pages = drawn.setdefault(id(self), [[]])
            if name == "showPage":
                pages.append([])
            else:
                pages[-1].append(str(args[2] if len(args) > 2 else kwargs["text"]))
            return original(self, *args, **kwargs)
        return record

    finish = sample_transfer._Pdf.finish

    def finished(self):  # type: ignore[no-untyped-def]
        data, pages = finish(self)
        by_digest[hashlib.sha256(data).hexdigest()] = drawn.pop(id(self.c), [[]])[:pages]
        return data, pages

    try:
        for name in originals:
            setattr(rl_canvas.Canvas, name, recorder(name))
        sample_transfer._Pdf.finish = finished  # type: ignore[method-assign]
        sample_transfer.generate(out, households=households)
    finally:
        for name, original in originals.items():
            setattr(rl_canvas.Canvas, name, original)
        sample_transfer._Pdf.finish = finish  # type: ignore[method-assign]
    corpus = {}
    for pdf in sorted(out.rglob("*.pdf")):
        pages = by_digest.get(hashlib.sha256(pdf.read_bytes()).hexdigest())
        if pages and any(any(s.strip() for s in page) for page in pages):
            corpus[pdf] = pages
    return corpus


# -- the extractors: path -> text per page --------------------------------------------------

def pypdf_pages(path: Path) -> list[str]:
    import pypdf

    return [page.extract_text() or "" for page in pypdf.PdfReader(str(path)).pages]


def pdfminer_plain_pages(path: Path) -> list[str]:
    """pdfminer.six with layout analysis off (TextConverter without LAParams)."""
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
            pages.append(out.getvalue())
    return pages


def pdfminer_layout_pages(path: Path) -> list[str]:
    """pdfminer.six with full layout analysis (what ingest used before)."""
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LTTextContainer

    return ["".join(e.get_text() for e in layout if isinstance(e, LTTextContainer))
            for layout in extract_pages(str(path))]


def pdftotext_pages(path: Path) -> list[str]:
    done = subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True,
                          check=True, timeout=300)
    pages = done.stdout.decode("utf-8").split("\f")
    return pages[:-1] if pages and not pages[-1].strip() else pages


EXTRACTORS: dict[str, Callable[[Path], list[str]]] = {
    "pypdf": pypdf_pages,
    "pdfminer (layout off)": pdfminer_plain_pages,
    "pdfminer (layout, before)": pdfminer_layout_pages,
    "pdftotext (poppler)": pdftotext_pages,
}


def compare(expected: list[list[str]], found: list[str]) -> dict[str, int]:
    """Lines found and pages whose characters are exact, against the drawn strings."""
    lines = hits = exact = 0
    for n, strings in enumerate(expected):
        text = _squeeze(found[n]) if n < len(found) else ""
        wanted = [_squeeze(s) for s in strings if _squeeze(s)]
        lines += len(wanted)
        hits += sum(1 for s in wanted if s in text)
        exact += Counter(text) == Counter("".join(wanted))
    return {"lines": lines, "lines_found": hits, "pages": len(expected), "pages_exact": exact,
            "page_count_ok": int(len(found) == len(expected))}


def run(households: int, repeat: int) -> dict:
    """Extract every text PDF with each extractor ``repeat`` times; the best time counts."""
    with tempfile.TemporaryDirectory(prefix="dangan-bench-text-") as tmp:
        corpus = make_corpus(Path(tmp) / "transfer", households)
        pages = sum(len(p) for p in corpus.values())
        results: dict[str, dict] = {}
        for name, extract in EXTRACTORS.items():
            if name.startswith("pdftotext") and shutil.which("pdftotext") is None:
                results[name] = {"skipped": "pdftotext (Debian poppler-utils) is not installed"}
                continue
            best = float("inf")
            tally: Counter = Counter()
            for _ in range(repeat):
                tally = Counter()
                start = time.perf_counter()
                outputs = {pdf: extract(pdf) for pdf in corpus}
                best = min(best, time.perf_counter() - start)
                for pdf, expected in corpus.items():
                    tally.update(compare(expected, outputs[pdf]))
            results[name] = {
                "seconds": round(best, 3), "pages_per_s": round(pages / best, 1),
                **dict(tally),
                "exact": tally["lines_found"] == tally["lines"]
                and tally["pages_exact"] == tally["pages"]
                and tally["page_count_ok"] == len(corpus)}
    return {"households": households, "pdfs": len(corpus), "pages": pages, "repeat": repeat,
            "machine": machine(), "results": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    data = run(args.households, args.repeat)
    rows = [["extractor", "s", "pages/s", "lines found", "pages exact", "exact"]]
    for name, r in data["results"].items():
        if "skipped" in r:
            rows.append([name, "-", "-", "-", "-", f"skipped: {r['skipped']}"])
            continue
        rows.append([name, f"{r['seconds']:.2f}", f"{r['pages_per_s']:.1f}",
                     f"{r['lines_found']}/{r['lines']}", f"{r['pages_exact']}/{r['pages']}",
                     "yes" if r["exact"] else "no"])
    print(f"{data['pdfs']} text PDFs, {data['pages']} pages ({data['households']} households), "
          f"best of {data['repeat']}")
    print(table(rows))
    print(f"saved {save('text_extraction', data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
