"""MIME types from the PRONOM record where Siegfried matched a signature, from libmagic
otherwise; the sample transfer's report and METS are what they were when libmagic named
every file, but for the tool attribution of the format identification event."""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

import pygfried
import pytest
from lxml import etree

import ingest.formats as formats
from ingest.formats import identify, pronom_mime, siegfried_basis
from ingest.pipeline import Ingester
from policies import load_settings

PREMIS = "http://www.loc.gov/premis/v3"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?")
HEX64 = re.compile(r"\b[0-9a-f]{64}\b")


def _pronom(path: Path) -> dict:
    entry = pygfried.identify_many([str(path)], workers=1)["files"][0]
    return next(m for m in entry["matches"] if m.get("ns") == "pronom")


def _files(folder: Path) -> dict[str, Path]:
    from PIL import Image

    folder.mkdir()
    png = folder / "scan.png"
    Image.new("RGB", (8, 8), "red").save(png)
    jpeg = folder / "photo.jpg"
    Image.new("RGB", (8, 8), "blue").save(jpeg, "JPEG")
    text = folder / "note.txt"
    text.write_text("村委会意见：同意。\n", encoding="utf-8")
    binary = folder / "blob.bin"
    binary.write_bytes(bytes(range(7, 200)))
    png_named_txt = folder / "scan-as.txt"
    png_named_txt.write_bytes(png.read_bytes())
    return {"png": png, "jpeg": jpeg, "text": text, "bin": binary, "mismatch": png_named_txt}


def test_signature_matches_take_the_pronom_mime_type_and_others_ask_libmagic(tmp_path):
    files = _files(tmp_path / "f")
    assert siegfried_basis(_pronom(files["png"])) == "signature"
    assert pronom_mime(_pronom(files["png"])) == "image/png"
    assert siegfried_basis(_pronom(files["bin"])) in ("extension-only", "unidentified")
    assert pronom_mime(_pronom(files["text"])) is None
    # a PNG named .txt: Siegfried warns of the extension mismatch, so libmagic is asked
    assert siegfried_basis(_pronom(files["mismatch"])) == "ambiguous"
    found = dict(zip(files, identify(list(files.values()), workers=1)))
    assert (found["png"].mime, found["png"].mime_by) == ("image/png", "siegfried")
    assert (found["jpeg"].mime, found["jpeg"].mime_by) == ("image/jpeg", "siegfried")
    assert (found["text"].mime, found["text"].mime_by) == ("text/plain", "libmagic")
    assert found["bin"].mime_by == "libmagic"
    assert (found["mismatch"].mime, found["mismatch"].mime_by) == ("image/png", "libmagic")
    # where both answer, they agree: libmagic names the signature-matched files alike
    for kind in ("png", "jpeg"):
        assert formats._mime(files[kind]) == found[kind].mime


def test_the_child_process_path_answers_as_identification_in_process(tmp_path):
    from PIL import Image

    root = tmp_path / "many"
    root.mkdir()
    for n in range(formats.SUBPROCESS_MIN + 10):
        if n % 3:
            (root / f"{n:04d}.txt").write_text(f"第{n}份\n", encoding="utf-8")
        else:
            Image.new("RGB", (4, 4), (n % 256, 0, 0)).save(root / f"{n:04d}.png")
    names = sorted(root.iterdir())
    batched = identify(names, workers=2)              # Siegfried child, batches, threads
    direct = [identify([n], workers=1)[0] for n in names[:12]]
    assert batched[:12] == direct
    assert {f.mime_by for f in batched} == {"siegfried", "libmagic"}
    assert all(f.mime == ("image/png" if n.suffix == ".png" else "text/plain")
               for f, n in zip(batched, names))


def _ingest(source: Path, home: Path) -> tuple[str, str, dict[str, bytes]]:
    home.mkdir()
    result = Ingester(load_settings(home, environ={"DANGAN_STORAGE_FSYNC": "false"})).ingest(source)
    assert result.status == "accepted", result.failures
    report = Path(result.report_json).read_text(encoding="utf-8")
    html = Path(result.report_html).read_text(encoding="utf-8")
    mets = {}
    for aip in result.aips:
        found = list(home.rglob(f"{aip['uuid']}/data/metadata/mets.xml"))
        assert found, aip
        mets[aip["label"]] = found[0].read_bytes()
    return report, html, mets


def _without_attribution(mets: bytes) -> tuple[bytes, list[str]]:
    """The METS without the format identification event's detail, outcome note and linking
    agents (the tool attribution), and those notes."""
    tree = etree.parse(io.BytesIO(mets))
    notes = []
    for event in tree.iter(f"{{{PREMIS}}}event"):
        if event.findtext(f"{{{PREMIS}}}eventType") != "format identification":
            continue
        notes += [n.text for n in event.iter(f"{{{PREMIS}}}eventOutcomeDetailNote")]
        for tag in ("eventDetailInformation", "eventOutcomeInformation", "linkingAgentIdentifier"):
            for child in event.findall(f"{{{PREMIS}}}{tag}"):
                event.remove(child)
    return etree.tostring(tree, encoding="utf-8"), notes


def _normalised(text: str, content_digests: set[str]) -> str:
    """Identifiers and times masked, and the digests of files that hold them (reports,
    record.json, which name the run's UUIDs and times); the content files' digests kept."""
    text = TIME.sub("TIME", UUID.sub("UUID", text))
    return HEX64.sub(lambda m: m.group(0) if m.group(0) in content_digests else "DIGEST", text)


def test_sample_transfer_report_and_mets_are_unchanged_but_for_the_attribution(
        sample, tmp_path, monkeypatch):
    for name in [n for n in __import__("os").environ if n.startswith("DANGAN_")]:
        monkeypatch.delenv(name)
    digests = set()
    for path in sample.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            digests |= {hashlib.new(a, data).hexdigest() for a in ("sha256", "sm3")
                        if a in hashlib.algorithms_available}
    now = _ingest(sample, tmp_path / "now")
    with monkeypatch.context() as patch:
        # as before: libmagic names every file, the PRONOM record only where it cannot
        patch.setattr(formats, "pronom_mime", lambda match: None)
        before = _ingest(sample, tmp_path / "before")
    assert _normalised(now[0], digests) == _normalised(before[0], digests)   # report JSON
    assert _normalised(now[1], digests) == _normalised(before[1], digests)   # report HTML
    assert sorted(now[2]) == sorted(before[2])
    from_pronom = 0
    for label, mets in now[2].items():
        ours, our_notes = _without_attribution(mets)
        theirs, their_notes = _without_attribution(before[2][label])
        assert _normalised(ours.decode(), digests) == _normalised(theirs.decode(), digests), label
        assert len(our_notes) == 1 and len(their_notes) == 1
        files, from_them = re.search(r"(\d+) files, .* of 0 from PRONOM \(Siegfried\), of (\d+) "
                                     r"by libmagic", their_notes[0]).groups()
        assert files == from_them
        ours_pronom, ours_libmagic = map(int, re.search(
            r"of (\d+) from PRONOM \(Siegfried\), of (\d+) by libmagic", our_notes[0]).groups())
        assert ours_pronom + ours_libmagic == int(files)
        from_pronom += ours_pronom
        if ours_libmagic == 0:
            assert b"libmagic-" not in etree.tostring(
                next(e for e in etree.parse(io.BytesIO(mets)).iter(f"{{{PREMIS}}}event")
                     if e.findtext(f"{{{PREMIS}}}eventType") == "format identification"))
    assert from_pronom > 0   # the sample's PDF and JPEG files are matched by signature


def test_the_child_writes_its_whole_answer_to_a_full_non_blocking_pipe():
    """pygfried's Go runtime may leave standard output non-blocking: a batch's line longer
    than the pipe must still arrive whole while the reader is slow."""
    import subprocess
    import sys
    import time

    code = ("import os, fcntl; from ingest.formats import _write_line; "
            "fcntl.fcntl(1, fcntl.F_SETFL, fcntl.fcntl(1, fcntl.F_GETFL) | os.O_NONBLOCK); "
            "_write_line('x' * 1_000_000 + '\\n'); _write_line('end\\n')")
    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, cwd=root)
    time.sleep(0.5)          # the pipe fills while nobody reads
    out = child.stdout.read()
    assert child.wait() == 0
    assert out == b"x" * 1_000_000 + b"\nend\n"


def _many(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for index in range(count):
        path = folder / f"n{index:04d}.txt"
        path.write_text(f"第 {index} 号\n", encoding="utf-8")
        paths.append(path)
    return paths


def test_the_siegfried_child_answers_later_requests_as_this_process_would(tmp_path):
    names = [str(p) for p in _many(tmp_path / "many", formats.SUBPROCESS_MIN)]
    later = _files(tmp_path / "later")
    job = formats.SiegfriedJob(names, workers=1)
    try:
        first = job.result()
        assert [f["filename"] for f in first["files"]] == names
        # two requests in a row on the same child, one of them of names with spaces and CJK
        odd = tmp_path / "later" / "村 委 会.txt"
        odd.write_text("意见\n", encoding="utf-8")
        for batch in ([str(p) for p in later.values()], [str(odd)]):
            child = identify(batch, workers=1, child=job)
            here = identify(batch, workers=1)
            assert child == here
        assert job._child.poll() is None          # still waiting for requests
    finally:
        job.close()
    assert job._child.returncode == 0             # it ends when its pipe is closed
    with pytest.raises(RuntimeError, match="not waiting"):
        job.more(names[:1])


def test_a_large_folder_ingest_never_loads_the_signatures_in_its_own_process(
        tmp_path, monkeypatch):
    """The Siegfried child of a large transfer identifies the AIPs' reports and metadata
    files too and names the signature files for the PREMIS agent: this process never
    loads them (about 80 MiB and half a second)."""
    folder = tmp_path / "transfer"
    folder.mkdir()
    for index in range(formats.SUBPROCESS_MIN + 10):   # no text to extract: few metadata files
        (folder / f"b{index:04d}.bin").write_bytes(b"\0\1" + index.to_bytes(8, "big"))
    expected = formats.tool_versions()
    formats.tool_versions.cache_clear()
    formats._siegfried_header.clear()

    def refused(*args, **kwargs):
        raise AssertionError("Siegfried's signatures were loaded in the ingest process")

    monkeypatch.setattr(formats.pygfried, "identify_many", refused)
    try:
        result = Ingester(load_settings(tmp_path / "home", environ={
            "DANGAN_STORAGE_FSYNC": "false"})).ingest(tmp_path / "transfer")
        assert result.status == "accepted", result.failures
        assert formats.tool_versions() == expected
    finally:
        formats.tool_versions.cache_clear()
    mets = next((tmp_path / "home").rglob("mets.xml")).read_bytes()
    tree = etree.fromstring(mets)
    # the reports and record.json have the PUIDs Siegfried gives them
    assert b"fmt/817" in mets or b"fmt/880" in mets     # JSON
    assert "siegfried-1" in etree.tostring(tree).decode()
