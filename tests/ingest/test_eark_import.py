"""``dangan ingest`` of an E-ARK SIP: a package written by hand to the CSIP 2.1 / E-ARK SIP
specification (the way another tool writes one: its own METS, a Dublin Core record, one PDF)
is recognised, checked, mapped and ingested, its METS kept in the AIP; a Dangan-made E-ARK
package goes round (export from one home, ingest into another) with its records intact; a
broken package is refused naming the file and the rule, with nothing written."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest

import dangan
from policies import load_settings

CREATED = "2024-05-06T10:00:00+08:00"
SCHEMAS = Path(__file__).resolve().parents[2] / "storage" / "aip" / "schemas"
# every file group says what it holds (the way eark-validator 1.1.3 reads CSIP63)
OTHER = 'csip:CONTENTINFORMATIONTYPE="OTHER" csip:OTHERCONTENTINFORMATIONTYPE="%s"'


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pdf(path: Path) -> None:
    """A one-page PDF of plain text (enough for format identification and the checks)."""
    body = b"BT /F1 12 Tf 72 720 Td (Dangtong county poverty alleviation notice) Tj ET"
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n" % len(body) + body + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for n, obj in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(out))


DC_RECORD = """<?xml version="1.0" encoding="UTF-8"?>
<metadata xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/">
  <dc:title>大通县扶贫开发局关于做好2016年产业扶贫项目申报工作的通知</dc:title>
  <dc:creator>大通县扶贫开发局</dc:creator>
  <dc:date>2016-04-12</dc:date>
  <dc:identifier>Q001-WS·2016-Y-FPB-0099</dc:identifier>
  <dc:subject>01</dc:subject>
  <dc:rights>公开</dc:rights>
  <dc:language>zh</dc:language>
  <dc:publisher>大通县人民政府</dc:publisher>
  <dcterms:extent>1 页</dcterms:extent>
</metadata>
"""


def _file_attrs(path: Path, mime: str) -> str:
    return (f'MIMETYPE="{mime}" SIZE="{path.stat().st_size}" CREATED="{CREATED}" '
            f'CHECKSUM="{_sha(path)}" CHECKSUMTYPE="SHA-256"')


def handmade_sip(root: Path) -> Path:
    """An E-ARK SIP as another tool writes it, following the specification's layout:
    METS.xml, metadata/descriptive/dc.xml, representations/rep1/{METS.xml,data/…}."""
    sip = root / "uuid-4f5c1d2e-sip"
    pdf = sip / "representations/rep1/data/产业扶贫项目申报通知.pdf"
    _pdf(pdf)
    dc = sip / "metadata/descriptive/dc.xml"
    dc.parent.mkdir(parents=True)
    dc.write_text(DC_RECORD, encoding="utf-8")
    rep = sip / "representations/rep1/METS.xml"
    rep.write_text(f"""<?xml version="1.0" encoding="UTF-8"?>
<mets xmlns="http://www.loc.gov/METS/" xmlns:xlink="http://www.w3.org/1999/xlink"
      xmlns:csip="https://DILCIS.eu/XML/METS/CSIPExtensionMETS"
      OBJID="uuid-4f5c1d2e-sip-rep1" TYPE="Textual works – Digital"
      csip:CONTENTINFORMATIONTYPE="MIXED" PROFILE="https://earksip.dilcis.eu/profile/E-ARK-SIP.xml">
  <metsHdr CREATEDATE="{CREATED}" csip:OAISPACKAGETYPE="SIP">
    <agent ROLE="CREATOR" TYPE="OTHER" OTHERTYPE="SOFTWARE"><name>County Transfer Tool</name>
      <note csip:NOTETYPE="SOFTWARE VERSION">3.2</note></agent>
  </metsHdr>
  <fileSec ID="rep1-fs"><fileGrp ID="rep1-data" USE="Data">
    <file ID="rep1-file-1" {_file_attrs(pdf, "application/pdf")}>
      <FLocat LOCTYPE="URL" xlink:type="simple" xlink:href="data/产业扶贫项目申报通知.pdf"/></file>
  </fileGrp></fileSec>
  <structMap ID="rep1-sm" TYPE="PHYSICAL" LABEL="CSIP"><div ID="rep1-div" LABEL="rep1">
    <div ID="rep1-div-data" LABEL="Data"><fptr FILEID="rep1-file-1"/></div></div></structMap>
</mets>
""", encoding="utf-8")
    schemas = sip / "schemas"
    schemas.mkdir()
    for name in ("mets.xsd", "xlink.xsd"):
        shutil.copyfile(SCHEMAS / name, schemas / name)
    info = sip / "documentation/transfer-agreement.txt"
    info.parent.mkdir(parents=True)
    info.write_text("移交协议 2024-07 (county office → bureau)\n", encoding="utf-8")
    (sip / "METS.xml").write_text(f"""<?xml version="1.0" encoding="UTF-8"?>
<mets xmlns="http://www.loc.gov/METS/" xmlns:xlink="http://www.w3.org/1999/xlink"
      xmlns:csip="https://DILCIS.eu/XML/METS/CSIPExtensionMETS"
      xmlns:sip="https://DILCIS.eu/XML/METS/SIPExtensionMETS"
      OBJID="uuid-4f5c1d2e-sip" LABEL="大通县扶贫开发局 2016 年文件" TYPE="Textual works – Digital"
      csip:CONTENTINFORMATIONTYPE="MIXED" PROFILE="https://earksip.dilcis.eu/profile/E-ARK-SIP.xml">
  <metsHdr CREATEDATE="{CREATED}" RECORDSTATUS="NEW" csip:OAISPACKAGETYPE="SIP">
    <agent ROLE="CREATOR" TYPE="OTHER" OTHERTYPE="SOFTWARE"><name>County Transfer Tool</name>
      <note csip:NOTETYPE="SOFTWARE VERSION">3.2</note></agent>
  </metsHdr>
  <dmdSec ID="dmd-1" CREATED="{CREATED}" STATUS="CURRENT">
    <mdRef LOCTYPE="URL" MDTYPE="DC" xlink:type="simple" xlink:href="metadata/descriptive/dc.xml"
           {_file_attrs(dc, "text/xml")}/>
  </dmdSec>
  <fileSec ID="fs">
    <fileGrp ID="grp-doc" USE="Documentation" {OTHER % "transfer documentation"}>
      <file ID="doc-1" {_file_attrs(info, "text/plain")}>
        <FLocat LOCTYPE="URL" xlink:type="simple" xlink:href="documentation/transfer-agreement.txt"/>
      </file>
    </fileGrp>
    <fileGrp ID="grp-schemas" USE="Schemas" {OTHER % "XML Schema"}>
      <file ID="xsd-1" {_file_attrs(schemas / "mets.xsd", "text/xml")}>
        <FLocat LOCTYPE="URL" xlink:type="simple" xlink:href="schemas/mets.xsd"/></file>
      <file ID="xsd-2" {_file_attrs(schemas / "xlink.xsd", "text/xml")}>
        <FLocat LOCTYPE="URL" xlink:type="simple" xlink:href="schemas/xlink.xsd"/></file>
    </fileGrp>
    <fileGrp ID="grp-rep1" USE="Representations/rep1" {OTHER % "county office records"}>
      <file ID="rep1-mets" {_file_attrs(rep, "text/xml")}>
        <FLocat LOCTYPE="URL" xlink:type="simple" xlink:href="representations/rep1/METS.xml"/>
      </file>
    </fileGrp>
  </fileSec>
  <structMap ID="sm" TYPE="PHYSICAL" LABEL="CSIP">
    <div ID="div-root" LABEL="uuid-4f5c1d2e-sip">
      <div ID="div-md" LABEL="Metadata" DMDID="dmd-1"/>
      <div ID="div-doc" LABEL="Documentation"><fptr FILEID="doc-1"/></div>
      <div ID="div-schemas" LABEL="Schemas"><fptr FILEID="xsd-1"/><fptr FILEID="xsd-2"/></div>
      <div ID="div-reps" LABEL="Representations"><fptr FILEID="rep1-mets"/>
        <div ID="div-rep1" LABEL="Representations/rep1">
          <mptr LOCTYPE="URL" xlink:type="simple" xlink:href="representations/rep1/METS.xml"
                xlink:title="grp-rep1"/>
        </div>
      </div>
    </div>
  </structMap>
</mets>
""", encoding="utf-8")
    return sip


def _shown(cli, uuid: str) -> dict:
    result = cli("show", uuid, "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_handmade_sip_is_ingested(cli, tmp_path):
    sip = handmade_sip(tmp_path)
    result = cli("ingest", sip, "--json")
    assert result.code == 0, result.out + result.err
    answer = json.loads(result.out)
    assert answer["status"] == "accepted"
    assert "未映射 not mapped: dc:publisher: 大通县人民政府" in answer["eark_mapping"]
    [aip] = answer["aips"]
    shown = _shown(cli, aip["uuid"])
    paths = {f["path"] for f in shown["files"]}
    assert "data/objects/产业扶贫项目申报通知.pdf" in paths
    got = cli("get", aip["uuid"], "data/metadata/submission/eark-sip/METS.xml", "-o", "-")
    assert got.code == 0
    # the record as mapped from Dublin Core
    record = cli("get", aip["uuid"], "data/metadata/record.json", "-o", tmp_path / "r.json")
    assert record.code == 0, record.err
    text = (tmp_path / "r.json").read_text(encoding="utf-8")
    for value in ("大通县扶贫开发局关于做好2016年产业扶贫项目申报工作的通知", "大通县扶贫开发局",
                  "20160412", "Q001-WS·2016-Y-FPB-0099"):
        assert value in text
    # the same SIP zipped, again: already ingested
    archive = shutil.make_archive(str(tmp_path / "sip"), "zip", tmp_path, sip.name)
    again = cli("ingest", archive, "--json")
    assert json.loads(again.out)["status"] == "already-ingested", again.out


@pytest.mark.parametrize("breakage, rule", [
    ("checksum", "CSIP71"), ("missing", "CSIP79"), ("type", "CSIP9"), ("xml", "XML-1")])
def test_broken_sip_is_refused_naming_file_and_rule(cli, home, tmp_path, breakage, rule):
    sip = handmade_sip(tmp_path)
    mets = sip / "METS.xml"
    if breakage == "checksum":
        (sip / "documentation/transfer-agreement.txt").write_text("changed\n", encoding="utf-8")
    elif breakage == "missing":
        (sip / "documentation/transfer-agreement.txt").unlink()
    elif breakage == "type":
        mets.write_text(mets.read_text(encoding="utf-8").replace(
            'csip:OAISPACKAGETYPE="SIP"', 'csip:OAISPACKAGETYPE="PARCEL"'), encoding="utf-8")
    else:
        rep = sip / "representations/rep1/METS.xml"
        rep.write_text(rep.read_text(encoding="utf-8")[:-20], encoding="utf-8")
        # its checksum in the root METS is now wrong too; the XML error is named all the same
    result = cli("ingest", sip)
    assert result.code == 1, result.out + result.err
    assert f"[{rule}]" in result.err
    assert "E-ARK" in result.err
    assert cli("show", "--help").code == 0
    listed = cli("search", "产业扶贫")
    assert "Q001-WS·2016-Y-FPB-0099" not in listed.out
    assert not list((home.home / "staging").glob("eark-*"))


def test_dangan_package_goes_round(cli, home, sample, tmp_path, monkeypatch):
    result = cli("ingest", sample, "--json")
    assert result.code == 0, result.out + result.err
    aips = json.loads(result.out)["aips"]
    volume = next(a for a in aips if a["archival_code"])
    out = tmp_path / "export"
    exported = cli("export", "eark", volume["uuid"], "-o", out / "package.zip")
    assert exported.code == 0, exported.err
    before = _shown(cli, volume["uuid"])
    # into another home
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.setenv("DANGAN_HOME", str(other))
    again = cli("ingest", out / "package.zip", "--json")
    assert again.code == 0, again.out + again.err
    answer = json.loads(again.out)
    [aip] = answer["aips"]
    assert aip["archival_code"] == volume["archival_code"]
    after = _shown(cli, aip["uuid"])
    payload = lambda d: sorted((f["path"].split("/", 2)[2], f["digests"]["sha256"])  # noqa: E731
                               for f in d["files"] if f["path"].startswith("data/objects/"))
    assert payload(after) == payload(before)
    assert [i["archival_code"] for i in after["items"]] == \
        [i["archival_code"] for i in before["items"]]
    assert [i["title"] for i in after["items"]] == [i["title"] for i in before["items"]]
    assert any(f["path"] == "data/metadata/submission/eark-sip/METS.xml" for f in after["files"])
