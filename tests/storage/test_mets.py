"""Tests for storage.aip.mets: METS 1.12 + PREMIS 3 build, parse and validate."""

import dataclasses
import hashlib

import pytest
from lxml import etree

from storage.aip.mets import (
    NSMAP,
    Agent,
    AipDescription,
    Event,
    FileEntry,
    Item,
    Retention,
    build_mets,
    href_to_path,
    parse_mets,
    path_to_href,
    validate_mets,
)

AIP_UUID = "3f1c2a9e-5b7d-4e21-9a0c-6d8e2f4b1c07"
PREMIS = "{http://www.loc.gov/premis/v3}"


def digests(content: bytes) -> dict[str, str]:
    """A real sha256; the SM3 value only has to look like one."""
    return {
        "sha256": hashlib.sha256(content).hexdigest(),
        "sm3": hashlib.sha3_256(content).hexdigest(),
    }


def pdf(file_id: str, path: str, original: str, item_id: str | None, **extra) -> FileEntry:
    values = dict(
        id=file_id,
        path=path,
        original_name=original,
        size=182_113,
        digests=digests(path.encode()),
        mime="application/pdf",
        puid="fmt/276",
        format_name="Acrobat PDF 1.7 - Portable Document Format",
        format_version="1.7",
        item_id=item_id,
    )
    return FileEntry(**{**values, **extra})


def realistic_aip() -> AipDescription:
    """A household volume (户卷) with two items, five files, four events and a retention."""
    agents = (
        Agent("dangan-0.1.0", "Dangan", "software", "0.1.0"),
        Agent("siegfried-1.11.9", "Siegfried", "software", "1.11.9; DROID_SignatureFile_V125.xml"),
        Agent("clamav-1.0.7", "ClamAV", "software", None),
        Agent("org-632123", "某县乡村振兴局", "organization"),
    )
    volume_fields = {
        "archival_code": "6301-JF·02-0001",
        "title": "张某某户精准扶贫档案",
        "year": "2016",
        "retention_period": "D30",
        "poverty_causes": ["因病", "缺劳力"],
        "family_size": 4,
    }
    items = (
        Item("item-0001", "张某某户精准扶贫档案", volume_fields, level="户卷"),
        Item(
            "item-0002",
            "建档立卡贫困户申请书",
            {
                "archival_code": "6301-JF·02-0001-001",
                "date": "20160312",
                "page_count": 3,
                "keywords": [],
                "remarks": "  第一行\n第二行\r\n\t缩进 ",
            },
            parent_id="item-0001",
        ),
        Item(
            "item-0003",
            "[帮扶计划及照片]",
            {"archival_code": "6301-JF·02-0001-002", "keywords": ["帮扶计划"], "page_count": 12},
            parent_id="item-0001",
        ),
    )
    files = (
        pdf(
            "file-0001", "data/objects/户卷/001-申请书.pdf", "户卷/001－申请书.pdf",
            "item-0002",
        ),
        pdf(
            "file-0002", "data/objects/户卷/002·帮扶计划.ofd", "户卷/002•帮扶计划.ofd",
            "item-0003", mime=None, puid=None, format_name=None, format_version=None,
            size=45_020,
        ),
        pdf(
            "file-0003", "data/objects/户卷/照片 01 (正面) #1.jpg",
            "户卷/照片 01 (正面) #1.JPG", "item-0003", mime="image/jpeg", puid="fmt/43",
            format_name="JPEG File Interchange Format", format_version="1.01",
        ),
        pdf(
            "file-0004", "data/metadata/text/001-申请书.txt", "户卷/001-申请书.txt",
            "item-0002", mime="text/plain", puid="x-fmt/111", format_name="Plain Text File",
            format_version=None, use="metadata",
        ),
        pdf(
            "file-0005", "data/objects/submissionDocumentation/归档文件目录.xlsx",
            "归档文件目录.xlsx", None, digests={"sha256": hashlib.sha256(b"xlsx").hexdigest()},
            mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            puid="fmt/214", format_name="Microsoft Excel for Windows",
            format_version="2007 onwards", use="submissionDocumentation",
        ),
    )
    identified = ("file-0001", "file-0003", "file-0004", "file-0005")
    events = (
        Event(
            "a0d5b9e4-0c61-4f0e-8f0b-1f6f3f1b2c01", "format identification",
            "2024-05-06T09:30:11+08:00", "pass", detail="sf -json",
            agent_ids=("siegfried-1.11.9",), file_ids=identified,
        ),
        Event(
            "a0d5b9e4-0c61-4f0e-8f0b-1f6f3f1b2c02", "format identification",
            "2024-05-06T09:30:11+08:00", "fail", detail="sf -json",
            outcome_detail="no PRONOM match (GD-3-3)",
            agent_ids=("siegfried-1.11.9",), file_ids=("file-0002",),
        ),
        Event(
            "a0d5b9e4-0c61-4f0e-8f0b-1f6f3f1b2c03", "virus check", "2024-05-06T09:30:12+08:00",
            "not-checked", outcome_detail="ClamAV daemon unreachable: signatures not loaded",
            agent_ids=("clamav-1.0.7",),
        ),
        Event(
            "a0d5b9e4-0c61-4f0e-8f0b-1f6f3f1b2c04", "ingestion", "2024-05-06T09:31:00+08:00",
            "pass", detail="transfer 2024-0087 accepted", agent_ids=("dangan-0.1.0", "org-632123"),
        ),
    )
    return AipDescription(
        uuid=AIP_UUID,
        archival_code="6301-JF·02-0001",
        label="张某某户精准扶贫档案",
        created="2024-05-06T09:31:00+08:00",
        creator_agent_id="dangan-0.1.0",
        source_organization="某县乡村振兴局",
        files=files,
        items=items,
        events=events,
        agents=agents,
        retention=Retention(
            "D30", "2046-12-31", "2041-12-31", "DRAFT retention schedule 0.1 rule 02-household"
        ),
        profile="qh-jzfp-archives",
    )


def minimal_aip() -> AipDescription:
    return AipDescription(
        uuid="0b8e6c1a-2d3f-4a5b-8c9d-0e1f2a3b4c5d",
        archival_code=None,
        label="",
        created="2024-05-06T01:31:00Z",
        creator_agent_id="dangan-0.1.0",
        source_organization=None,
        files=(),
        items=(),
        events=(),
        agents=(Agent("dangan-0.1.0", "Dangan", "software"),),
    )


def tree(xml: bytes) -> etree._Element:
    return etree.fromstring(xml)


def serialise(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def assert_valid_round_trip(aip: AipDescription) -> None:
    xml = build_mets(aip)
    assert validate_mets(xml) == []
    assert parse_mets(xml) == aip


def _file(aip: AipDescription, index: int, **change) -> AipDescription:
    files = list(aip.files)
    files[index] = dataclasses.replace(files[index], **change)
    return dataclasses.replace(aip, files=tuple(files))


def _item(aip: AipDescription, index: int, **change) -> AipDescription:
    items = list(aip.items)
    items[index] = dataclasses.replace(items[index], **change)
    return dataclasses.replace(aip, items=tuple(items))


def _event(aip: AipDescription, index: int, **change) -> AipDescription:
    events = list(aip.events)
    events[index] = dataclasses.replace(events[index], **change)
    return dataclasses.replace(aip, events=tuple(events))


# --------------------------------------------------------------------------- valid documents


def test_realistic_aip_validates():
    xml = build_mets(realistic_aip())
    assert xml.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n<mets:mets")
    assert validate_mets(xml) == []


def test_round_trip_is_exact():
    aip = realistic_aip()
    assert parse_mets(build_mets(aip)) == aip


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"retention": Retention("Y", None, None)},
        {"retention": Retention("D10", None, "2035-01-01", "rule 05")},
        {"profile": "qh-jzfp-archives", "archival_code": "", "source_organization": "县档案馆"},
    ],
)
def test_minimal_aip_validates_and_round_trips(change):
    assert_valid_round_trip(dataclasses.replace(minimal_aip(), **change))


def test_edge_values_round_trip():
    aip = realistic_aip()
    aip = _item(aip, 0, label="题名\n第二行\t\r", level="案卷", fields={
        "blank": "", "spaces": "   ", "zero": 0, "negative": -7, "big": 10**30,
        "list": ["", " ", "a"], "emoji": "𠀀😀", "markup": "<a href='x'>&amp;</a> ]]>",
    })
    aip = _file(aip, 0, original_name="", format_version="", mime="", use="")
    aip = _event(aip, 0, detail=" ", outcome_detail="\n")
    aip = dataclasses.replace(aip, label=" ", agents=(*aip.agents, Agent("x", "", "person", "")))
    assert_valid_round_trip(aip)


def test_other_hash_algorithms_round_trip():
    extra = {"md5": "0" * 32, "sha512": "1" * 128, "blake2b": "2" * 128}
    aip = _file(realistic_aip(), 0, digests={**realistic_aip().files[0].digests, **extra})
    assert_valid_round_trip(aip)
    labels = tree(build_mets(aip)).xpath(
        "(//premis:object)[1]//premis:messageDigestAlgorithm/text()", namespaces=NSMAP
    )
    assert labels == ["SHA-256", "SM3", "MD5", "SHA-512", "blake2b"]


def test_unidentified_format_and_literal_unknown_are_distinct():
    base = dataclasses.replace(realistic_aip().files[1], item_id=None)
    files = (
        dataclasses.replace(base, id="file-a", format_name=None, format_version=None, puid=None),
        dataclasses.replace(base, id="file-b", format_name="unknown", puid=None),
        dataclasses.replace(base, id="file-c", format_name=None, puid="fmt/9", format_version="2"),
    )
    assert_valid_round_trip(dataclasses.replace(minimal_aip(), files=files))


def test_mets_layout():
    aip = realistic_aip()
    root = tree(build_mets(aip))
    assert root.get("OBJID") == AIP_UUID
    assert root.get("TYPE") == "AIP"
    assert root.get("PROFILE") == "qh-jzfp-archives"
    uses = [group.get("USE") for group in root.iterfind("mets:fileSec/mets:fileGrp", NSMAP)]
    assert uses == ["original", "metadata", "submissionDocumentation"]
    first = root.find("mets:fileSec//mets:file[@ID='file-0001']", NSMAP)
    assert first.get("CHECKSUMTYPE") == "SHA-256"
    assert first.get("CHECKSUM") == aip.files[0].digests["sha256"]
    assert first.get("ADMID") == "techMD-file-0001"
    assert first.get("DMDID") == "item-0002"
    volume = root.find("mets:structMap[@TYPE='logical']/mets:div/mets:div", NSMAP)
    assert volume.get("TYPE") == "户卷"
    children = [div.get("DMDID") for div in volume.iterfind("mets:div", NSMAP)]
    assert children == ["item-0002", "item-0003"]
    physical = root.find("mets:structMap[@TYPE='physical']/mets:div", NSMAP)
    folders = [div.get("LABEL") for div in physical.iterfind("mets:div/mets:div", NSMAP)]
    assert folders == ["objects", "metadata"]


def test_whole_aip_event_links_to_the_package_uuid():
    root = tree(build_mets(realistic_aip()))
    link = root.findall(".//premis:event", NSMAP)[2].find("premis:linkingObjectIdentifier", NSMAP)
    assert link.findtext("premis:linkingObjectIdentifierType", namespaces=NSMAP) == "UUID"
    assert link.findtext("premis:linkingObjectIdentifierValue", namespaces=NSMAP) == AIP_UUID


# --------------------------------------------------------------------------- file locations


def test_flocat_is_relative_to_mets_and_percent_encoded():
    root = tree(build_mets(realistic_aip()))
    hrefs = root.xpath("//mets:FLocat/@xlink:href", namespaces=NSMAP)
    assert hrefs[0] == "../objects/%E6%88%B7%E5%8D%B7/001-%E7%94%B3%E8%AF%B7%E4%B9%A6.pdf"
    assert hrefs[1].endswith("/002%C2%B7%E5%B8%AE%E6%89%B6%E8%AE%A1%E5%88%92.ofd")
    assert hrefs[3] == "text/001-%E7%94%B3%E8%AF%B7%E4%B9%A6.txt"
    assert all(href.isascii() for href in hrefs)


@pytest.mark.parametrize(
    "path",
    [
        "data/objects/户卷/照片 01 (正面) #1.jpg",
        "data/objects/a%20b?.txt",
        "data/metadata/record.json",
        "data/logs/ingest-report.json",
        "bag-info.txt",
        "data/metadatax/file",
    ],
)
def test_href_round_trip(path):
    assert href_to_path(path_to_href(path)) == path


@pytest.mark.parametrize("href", ["../../../etc/passwd", "/etc/passwd", "%2Fetc/passwd"])
def test_href_outside_the_bag_is_refused(href):
    with pytest.raises(ValueError, match="outside the bag"):
        href_to_path(href)


# --------------------------------------------------------------------------- the validator can fail


def test_missing_required_mets_attribute_is_reported():
    root = tree(build_mets(realistic_aip()))
    del root.find("mets:dmdSec/mets:mdWrap", NSMAP).attrib["MDTYPE"]
    errors = validate_mets(serialise(root))
    assert errors and all(error.startswith("line ") for error in errors)
    assert any("MDTYPE" in error for error in errors)


def test_invalid_xsi_type_is_reported():
    root = tree(build_mets(realistic_aip()))
    obj = root.find(".//premis:object", NSMAP)
    obj.set("{http://www.w3.org/2001/XMLSchema-instance}type", "premis:notAnObjectType")
    assert any("notAnObjectType" in error for error in validate_mets(serialise(root)))


def test_invalid_premis_inside_techmd_is_reported():
    root = tree(build_mets(realistic_aip()))
    characteristics = root.find(".//premis:objectCharacteristics", NSMAP)
    characteristics.remove(characteristics.find("premis:format", NSMAP))
    etree.SubElement(characteristics, f"{PREMIS}colour").text = "red"
    errors = validate_mets(serialise(root))
    assert any("colour" in error for error in errors), errors


def test_invalid_premis_event_is_reported():
    root = tree(build_mets(realistic_aip()))
    event = root.find(".//premis:event", NSMAP)
    event.remove(event.find("premis:eventType", NSMAP))
    errors = validate_mets(serialise(root))
    assert any("eventType" in error or "eventDateTime" in error for error in errors), errors


def test_wrong_checksum_type_is_reported():
    root = tree(build_mets(realistic_aip()))
    root.find(".//mets:file", NSMAP).set("CHECKSUMTYPE", "SM3")
    assert any("CHECKSUMTYPE" in error for error in validate_mets(serialise(root)))


def test_malformed_xml():
    unclosed = b"<mets:mets xmlns:mets='http://www.loc.gov/METS/'>"
    assert validate_mets(unclosed)[0].startswith("line 1:")
    with pytest.raises(ValueError, match="line 1"):
        parse_mets(b"<unclosed>")


def test_a_bare_premis_document_is_not_a_mets():
    errors = validate_mets(b'<object xmlns="http://www.loc.gov/premis/v3"/>')
    assert any("expected {http://www.loc.gov/METS/}mets" in error for error in errors)


def test_entities_are_not_expanded():
    xml = b'<!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]><m>&x;</m>'
    assert validate_mets(xml)
    with pytest.raises(ValueError):
        parse_mets(xml)


# --------------------------------------------------------------------------- refused input


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (
            lambda a: _item(a, 1, fields={**a.items[1].fields, "title": "申请\x07书"}),
            r"item-0002\).fields\['title'\]",
        ),
        (
            lambda a: _item(a, 2, fields={"keywords": ["ok", "bad\x1b"]}),
            r"fields\['keywords'\]\[1\]",
        ),
        (lambda a: _file(a, 0, path="data/objects/\udcff.pdf"), r"files\[0\] \(file-0001\).path"),
        (lambda a: _file(a, 0, original_name="a\x00b"), r"original_name"),
        (lambda a: dataclasses.replace(a, label="bad\ufffe"), r"aip.label"),
        (lambda a: _event(a, 0, detail="\x0c"), r"events\[0\].detail"),
    ],
)
def test_xml_illegal_character_raises_naming_the_field(change, where):
    with pytest.raises(ValueError, match=where) as info:
        build_mets(change(realistic_aip()))
    assert "not allowed in XML" in str(info.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: _file(a, 0, item_id="item-9999"), "no item 'item-9999'"),
        (lambda a: _file(a, 0, digests={"sm3": "00"}), "sha256 is required"),
        (lambda a: _file(a, 0, path="data/objects/../x.pdf"), "normalised path"),
        (lambda a: _file(a, 0, path="data/" + "d/" * 200 + "x.pdf"), "folders deep"),
        (lambda a: _file(a, 0, id="0001"), "not an XML ID"),
        (lambda a: _file(a, 1, id="file-0001"), "duplicate id"),
        (lambda a: _item(a, 0, parent_id="item-0002"), "loops"),
        (lambda a: _event(a, 0, outcome=""), "outcome"),
        (lambda a: _event(a, 0, agent_ids=("nobody",)), "no agent 'nobody'"),
        (lambda a: _event(a, 0, file_ids=("file-9",)), "no file 'file-9'"),
        (lambda a: dataclasses.replace(a, creator_agent_id="x"), "creator_agent_id"),
        (lambda a: _item(a, 0, fields={"bad name": "x"}), "not an XML name"),
    ],
)
def test_inconsistent_description_raises(change, message):
    with pytest.raises(ValueError, match=message):
        build_mets(change(realistic_aip()))


@pytest.mark.parametrize("value", [True, 1.5, ("a",), {"a": 1}, None, ["a", 2]])
def test_unsupported_field_type_raises(value):
    with pytest.raises(TypeError, match="fields"):
        build_mets(_item(realistic_aip(), 0, fields={"value": value}))


# --------------------------------------------------------------------------- scale


def test_thousands_of_files_validate_and_round_trip():
    count = 3_000
    items = tuple(
        Item(f"item-{n:05d}", f"第{n}件", {"page_count": n}) for n in range(count // 10)
    )
    files = tuple(
        pdf(
            f"file-{n:05d}", f"data/objects/村{n % 7}/户{n % 97}/{n:05d}·扫描件.pdf",
            f"{n}.pdf", f"item-{n // 10:05d}", size=n,
            digests={"sha256": f"{n:064x}", "sm3": f"{n:064x}"},
        )
        for n in range(count)
    )
    assert_valid_round_trip(dataclasses.replace(minimal_aip(), files=files, items=items))
