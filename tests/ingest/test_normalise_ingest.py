"""Normalisation at ingest: derivatives beside the originals in the AIP, identified again,
with digests, PREMIS events and derivation relationships both ways, catalogued, audited and
rebuilt like any stored file; failures keep the original and are reported."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import bagit
import pytest
from lxml import etree

from storage.aip import mets, parse_mets, validate_mets

NSMAP = mets.NSMAP
from tests.ingest import normalise_inputs as inputs
from tests.ingest import normalise_inputs as inputs
from tests.ingest.normalise_inputs import office_transfer


def stored_aips(home) -> list[str]:
    root = home.home / "aips"
    return sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) \
        if root.exists() else []




@pytest.fixture
def normalising(monkeypatch):
    monkeypatch.setenv("DANGAN_NORMALISE_AT_INGEST", "true")
    monkeypatch.setenv("DANGAN_FULLTEXT_OCR", "false")


def ingest(cli, transfer):
    result = cli("ingest", transfer, "--json")
    data = json.loads(result.out)
    return result, data


def test_derivatives_sit_beside_their_sources_linked_both_ways(home, cli, tmp_path, normalising):
    transfer = office_transfer(tmp_path / "t")
    originals = {p: p.read_bytes() for p in transfer.rglob("*") if p.is_file()}
    result, data = ingest(cli, transfer)
    assert result.code == 0, result.err
    assert {p: p.read_bytes() for p in originals} == originals      # the transfer untouched
    uuid = data["aips"][0]["uuid"]
    folder = home.home / "aips" / uuid
    bagit.Bag(str(folder)).validate()
    # originals stay where they always were, byte for byte
    assert (folder / "data/objects/户卷/001-申请书.docx").read_bytes() == \
        originals[transfer / "户卷/001-申请书.docx"]
    pdf = folder / "data/preservation/户卷/001-申请书.docx.pdf"
    jpeg = folder / "data/access/户卷/002-扫描件.tif.jpg"
    assert pdf.read_bytes().startswith(b"%PDF") and jpeg.is_file()
    assert not (folder / "data/preservation/户卷/003-说明.txt.pdf").exists()
    xml = (folder / "data/metadata/mets.xml").read_bytes()
    assert validate_mets(xml) == []
    description = parse_mets(xml)
    by_path = {f.path: f for f in description.files}
    preserved = by_path["data/preservation/户卷/001-申请书.docx.pdf"]
    source = by_path["data/objects/户卷/001-申请书.docx"]
    assert preserved.use == "preservation" and preserved.puid == "fmt/477"
    assert preserved.derived_from == source.path and preserved.item_id == source.item_id
    assert by_path["data/access/户卷/002-扫描件.tif.jpg"].use == "access"
    # every relationship resolves, both ways
    root = etree.fromstring(xml)
    ids = set(root.xpath("//mets:file/@ID", namespaces=NSMAP))
    for obj in root.iterfind(".//premis:object", NSMAP):
        own = obj.findtext("premis:objectIdentifier/premis:objectIdentifierValue", namespaces=NSMAP)
        for rel in obj.iterfind("premis:relationship", NSMAP):
            other = rel.findtext("premis:relatedObjectIdentifier/"
                                 "premis:relatedObjectIdentifierValue", namespaces=NSMAP)
            assert other in ids
            back = {"has source": "is source of", "is source of": "has source"}[
                rel.findtext("premis:relationshipSubType", namespaces=NSMAP)]
            assert root.xpath(f"//premis:object[premis:objectIdentifier/premis:objectIdentifierValue"
                              f"='{other}']/premis:relationship[premis:relationshipSubType='{back}']"
                              f"/premis:relatedObjectIdentifier/premis:relatedObjectIdentifierValue"
                              f"='{own}'", namespaces=NSMAP)
    events = [e for e in description.events if e.type == "normalization"]
    assert len(events) == 2 and {e.outcome for e in events} == {"pass"}
    agents = {a.id: a for a in description.agents}
    office = next(e for e in events if preserved.id in e.file_ids)
    assert source.id in office.file_ids
    assert any(agents[a].name == "libreoffice" and "LibreOffice" in agents[a].version
               for a in office.agent_ids)
    report = json.loads(Path(data["report"]["json"]).read_text(encoding="utf-8"))
    assert {c["code"]: c["status"] for c in report["checks"]}["DG-3-2"] == "passed"
    assert [n["outcome"] for n in report["normalisation"]] == ["passed", "passed"]
    html = Path(data["report"]["html"]).read_text(encoding="utf-8")
    assert "规范化转换" in html and "data/preservation/户卷/001-申请书.docx.pdf" in html
    # catalogued, shown beside the source with its event
    shown = json.loads(cli("show", uuid, "--json").out)
    rows = {f["path"]: f for f in shown["files"]}
    assert rows[preserved.path]["use"] == "preservation"
    assert rows[preserved.path]["derived_from"] == source.path
    text = cli("show", uuid).out
    assert "data/preservation/户卷/001-申请书.docx.pdf" in text and "normalization" in text


def test_audit_and_rebuild_cover_the_derivatives(home, cli, tmp_path, normalising, request):
    from tests.storage.test_rebuild import drop_catalogue

    _, data = ingest(cli, office_transfer(tmp_path / "t"))
    uuid = data["aips"][0]["uuid"]
    derived = home.home / "aips" / uuid / "data/preservation/户卷/001-申请书.docx.pdf"
    audit = cli("audit", "--all", "--json")
    assert audit.code == 0, audit.out + audit.err
    # a damaged derivative is found by the audit like any other file
    original = derived.read_bytes()
    derived.chmod(0o644)
    derived.write_bytes(original[:-10] + b"0123456789")
    damaged = cli("audit", "--all", "--json")
    assert damaged.code != 0 and "data/preservation/" in damaged.out
    derived.write_bytes(original)
    shown = json.loads(cli("show", uuid, "--json").out)
    drop_catalogue(home, request)
    rebuilt = cli("rebuild", "--from", "local")
    assert rebuilt.code == 0, rebuilt.out + rebuilt.err
    again = json.loads(cli("show", uuid, "--json").out)
    assert again["files"] == shown["files"]
    assert any(f["use"] == "preservation" and f["derived_from"] for f in again["files"])


def own_policy(home, name: str, old: str, new: str) -> None:
    """The home's own copy of a shipped policy, with one edit."""
    own = home.home / "policies"
    own.mkdir(exist_ok=True)
    shipped = Path(__file__).resolve().parents[2] / f"policies/data/{name}.yaml"
    text = shipped.read_text(encoding="utf-8")
    assert old in text
    (own / f"{name}.yaml").write_text(text.replace(old, new), encoding="utf-8")


def test_a_corrupt_docx_keeps_the_original_and_the_report_says_why(home, cli, tmp_path,
                                                                  normalising):
    result, data = ingest(cli, office_transfer(tmp_path / "t", corrupt=True))
    assert result.code == 0, result.err          # the policy's on_failure is warn
    uuid = data["aips"][0]["uuid"]
    folder = home.home / "aips" / uuid
    assert (folder / "data/objects/户卷/001-申请书.docx").is_file()
    assert not (folder / "data/preservation").exists()
    report = json.loads(Path(data["report"]["json"]).read_text(encoding="utf-8"))
    check = {c["code"]: c for c in report["checks"]}["DG-3-2"]
    assert check["status"] == "failed" and check["severity"] == "warning"
    assert check["problems"][0]["path"] == "户卷/001-申请书.docx"
    assert "libreoffice" in check["problems"][0]["message"]
    events = [e for e in parse_mets((folder / "data/metadata/mets.xml").read_bytes()).events
              if e.type == "normalization"]
    assert sorted(e.outcome for e in events) == ["fail", "pass"]


def test_a_rejecting_rule_refuses_the_record(home, cli, tmp_path, normalising):
    own_policy(home, "preservation", "on_failure: warn", "on_failure: reject")
    result, data = ingest(cli, office_transfer(tmp_path / "t", corrupt=True))
    assert result.code == 1 and data["status"] == "rejected"
    assert any(f["code"] == "DG-3-2" for f in data["failures"])
    assert stored_aips(home) == []


def test_without_a_tool_nothing_is_made_and_the_report_says_so(home, cli, tmp_path, normalising,
                                                             monkeypatch):
    transfer = office_transfer(tmp_path / "t")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for program in ("clamscan", "tesseract", "pdftoppm"):    # what ingest may use, not soffice
        found = shutil.which(program)
        if found:
            (bin_dir / program).symlink_to(found)
    monkeypatch.setenv("PATH", str(bin_dir))
    result, data = ingest(cli, transfer)
    assert result.code == 0, result.err
    report = json.loads(Path(data["report"]["json"]).read_text(encoding="utf-8"))
    check = {c["code"]: c for c in report["checks"]}["DG-3-2"]
    assert check["status"] in ("not-checked", "failed")
    docx = next(p for p in check["problems"] if p["path"].endswith(".docx"))
    assert "tool libreoffice absent" in docx["message"]
    folder = home.home / "aips" / data["aips"][0]["uuid"]
    assert not (folder / "data/preservation").exists()


def test_off_by_default_nothing_changes(home, cli, tmp_path):
    _, data = ingest(cli, office_transfer(tmp_path / "t"))
    folder = home.home / "aips" / data["aips"][0]["uuid"]
    assert not (folder / "data/preservation").exists() and not (folder / "data/access").exists()
    report = json.loads(Path(data["report"]["json"]).read_text(encoding="utf-8"))
    assert "normalisation" not in report
    assert "DG-3-2" not in {c["code"] for c in report["checks"]}


def _mets_of(cli, uuid, out: Path):
    assert cli("get", uuid, "data/metadata/mets.xml", "-o", out).code == 0
    xml = out.read_bytes()
    assert validate_mets(xml) == []
    return parse_mets(xml)


def test_a_new_version_keeps_the_derivatives_and_a_replaced_source_drops_its_own(
        home, cli, tmp_path, normalising):
    _, data = ingest(cli, office_transfer(tmp_path / "t"))
    uuid = data["aips"][0]["uuid"]
    first = _mets_of(cli, uuid, tmp_path / "v1.xml")
    derived = {f.path: f.derived_from for f in first.files if f.derived_from}
    assert len(derived) == 2
    note = tmp_path / "回头看.txt"
    note.write_text("2019 回头看 入户核查\n", encoding="utf-8")
    assert cli("update", uuid, "--add", f"{note}:户卷/004-回头看.txt", "--reason", "回头看").code == 0
    second = _mets_of(cli, uuid, tmp_path / "v2.xml")
    assert {f.path: f.derived_from for f in second.files if f.derived_from} == derived
    assert {f.path: f.use for f in second.files if f.path in derived} == \
        {f.path: f.use for f in first.files if f.path in derived}
    other = inputs.docx(tmp_path / "新申请书.docx", "新的申请书内容")
    assert cli("update", uuid, "--replace", f"户卷/001-申请书.docx:{other}",
               "--reason", "更正").code == 0
    third = _mets_of(cli, uuid, tmp_path / "v3.xml")
    assert {f.path for f in third.files if f.derived_from} == \
        {"data/access/户卷/002-扫描件.tif.jpg"}
