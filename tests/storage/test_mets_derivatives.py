"""Derivatives in METS: PREMIS derivation relationships both ways, written the same by the
tree and the text writer, valid METS 1.12 + PREMIS 3, read back to the source's path."""

from __future__ import annotations

import dataclasses

import pytest
from lxml import etree

from storage.aip import mets
from storage.aip import FileEntry, build_mets, parse_mets, validate_mets
from tests.storage.test_mets_text import random_aip


def with_derivatives(seed: int = 5):
    aip = random_aip(seed, files=6)
    source = aip.files[0]
    derived = [
        FileEntry("file-p1", f"data/preservation/{source.path.removeprefix('data/objects/')}.pdf",
                  "a.pdf", 10, {"sha256": "0" * 64}, "application/pdf", "fmt/477",
                  "Acrobat PDF/A", "2b", "preservation", source.item_id, source.path),
        FileEntry("file-a1", f"data/access/{source.path.removeprefix('data/objects/')}.jpg",
                  "a.jpg", 11, {"sha256": "1" * 64}, "image/jpeg", "fmt/43", "JPEG", "1.02",
                  "access", source.item_id, source.path),
    ]
    return dataclasses.replace(aip, files=aip.files + tuple(derived)), source


@pytest.mark.parametrize("plain", [True, False])
def test_derivation_relationships_both_ways_valid_and_round_trip(plain):
    aip, source = with_derivatives()
    xml = mets._render(aip, plain=plain)
    assert xml == mets._render(aip, plain=not plain)
    assert validate_mets(xml) == []
    assert parse_mets(xml) == aip
    root = etree.fromstring(xml)
    ns = mets.NSMAP

    def relations(file_id):
        obj = root.xpath(f"//premis:object[premis:objectIdentifier/"
                         f"premis:objectIdentifierValue='{file_id}']", namespaces=ns)[0]
        return [(r.findtext("premis:relationshipType", namespaces=ns),
                 r.findtext("premis:relationshipSubType", namespaces=ns),
                 r.findtext("premis:relatedObjectIdentifier/premis:relatedObjectIdentifierValue",
                            namespaces=ns))
                for r in obj.iterfind("premis:relationship", ns)]

    assert relations(source.id) == [("derivation", "is source of", "file-p1"),
                                    ("derivation", "is source of", "file-a1")]
    assert relations("file-p1") == [("derivation", "has source", source.id)]
    # every relationship resolves to a file of the fileSec
    ids = set(root.xpath("//mets:file/@ID", namespaces=ns))
    related = root.xpath("//premis:relatedObjectIdentifierValue/text()", namespaces=ns)
    assert related and set(related) <= ids
    groups = root.xpath("//mets:fileGrp/@USE", namespaces=ns)
    assert "preservation" in groups and "access" in groups


def test_a_file_ids_renumbered_keep_the_relationship_by_path():
    aip, source = with_derivatives()
    renamed = tuple(dataclasses.replace(f, id=f"file-x{i}") for i, f in enumerate(aip.files))
    again = parse_mets(build_mets(dataclasses.replace(aip, files=renamed, events=())))
    assert [f.derived_from for f in again.files][-2:] == [source.path, source.path]


def test_a_derivative_of_no_file_is_refused():
    aip, _ = with_derivatives()
    broken = aip.files[:-1] + (dataclasses.replace(aip.files[-1], derived_from="data/objects/none"),)
    with pytest.raises(ValueError, match="derived_from: no file 'data/objects/none'"):
        build_mets(dataclasses.replace(aip, files=broken))


def test_a_version_object_names_its_source_by_the_layout_rule():
    from storage.aip import derived_source, object_use

    stored = "versions/v3-0a1b2c/data/access/户卷/002-扫描件.tif.jpg"
    assert object_use(stored) == "access"
    assert derived_source(stored) == "data/objects/户卷/002-扫描件.tif"
    assert derived_source("data/preservation/a/b.doc.pdf") == "data/objects/a/b.doc"
    assert derived_source("data/objects/a/b.doc") is None
    assert derived_source("data/metadata/text/a.txt") is None
