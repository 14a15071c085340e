"""METS 1.12 + PREMIS 3 for Dangan AIPs: build, parse and validate ``data/metadata/mets.xml``.

The METS document is the self-describing part of an AIP: the catalogue can be rebuilt from it
alone, so :func:`parse_mets` is the exact inverse of :func:`build_mets` for every field of
:class:`AipDescription`.

Where each value lives (``mets:`` METS, ``premis:`` PREMIS 3, ``dangan:`` ``urn:dangan:record:1``):

============================  ================================================================
AipDescription.uuid           ``mets/@OBJID``  (``@TYPE`` is always ``AIP``)
.label / .profile             ``mets/@LABEL`` / ``mets/@PROFILE`` (the metadata profile id)
.created                      ``metsHdr/@CREATEDATE`` (must be an ``xsd:dateTime``)
.creator_agent_id             ``metsHdr/agent[@ROLE=CREATOR][@OTHERTYPE=SOFTWARE]/note``
.source_organization          ``metsHdr/agent[@ROLE=OTHER][@OTHERROLE=PRODUCER]/name``
.archival_code (档号)          ``metsHdr/altRecordID[@TYPE="档号"]``
Item                          one ``dmdSec`` (``@ID`` = item id, ``mdWrap/@LABEL`` = label,
                              ``xmlData/dangan:record`` = fields); level and parent are the
                              ``div/@TYPE`` and nesting of the logical ``structMap``
FileEntry                     ``techMD`` with a ``premis:object xsi:type="premis:file"``
                              (identifier, originalName, fixity, size, format) plus the
                              ``fileSec`` ``file`` (``@USE`` of its ``fileGrp``, ``@MIMETYPE``,
                              ``@DMDID`` = item, ``FLocat/@xlink:href`` = path)
FileEntry.derived_from        ``premis:relationship`` (type ``derivation``, subtype ``has source``
                              on the derivative, ``is source of`` on its source), by file id
Event / Agent                 one ``digiprovMD`` each, holding ``premis:event`` / ``premis:agent``;
                              an event without file_ids links the AIP by its UUID, and
                              ``Agent.version`` is ``premis:agentVersion``
Retention                     ``rightsMD`` holding a ``premis:rights`` statement with
                              rightsBasis ``other``: otherRightsBasis ``"保管期限 <period>"``,
                              applicable dates from the creation date to ``expiry``
                              (``OPEN`` when None), otherRightsNote = ``basis``, and a
                              ``disseminate`` grant starting at ``open_date``
============================  ================================================================

File locations: ``FLocat/@xlink:href`` is the file's bag path made relative to the METS file
itself (``data/metadata/mets.xml``) and percent-encoded as UTF-8 (RFC 3986), e.g.
``data/objects/户卷/001·申请书.pdf`` -> ``../objects/%E6%88%B7...``. :func:`path_to_href` and
:func:`href_to_path` are the two directions.

Descriptive fields are rendered as ``<dangan:NAME>value</dangan:NAME>``; an ``int`` carries
``type="integer"``, each value of a list is one element with ``type="list"``, and an empty list
is a single ``<dangan:NAME type="list" empty="true"/>``.

An unidentified format (``format_name`` None) is written as formatName ``unknown`` with the
formatNote :data:`UNIDENTIFIED_NOTE`, so that a tool reporting the name "unknown" stays distinct.

Values that XML 1.0 cannot carry (control characters, lone surrogates, U+FFFE/U+FFFF) are
refused with a :class:`ValueError` naming the field; they are never stripped.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import posixpath
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from lxml import etree

METS_NS = "http://www.loc.gov/METS/"
PREMIS_NS = "http://www.loc.gov/premis/v3"
XLINK_NS = "http://www.w3.org/1999/xlink"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
DANGAN_NS = "urn:dangan:record:1"
NSMAP = {
    "mets": METS_NS,
    "premis": PREMIS_NS,
    "xlink": XLINK_NS,
    "xsi": XSI_NS,
    "dangan": DANGAN_NS,
}

METS_PATH = "data/metadata/mets.xml"
"""Where the METS document sits in the bag; file hrefs are relative to its folder."""
_METS_FOLDER = posixpath.dirname(METS_PATH)

SCHEMA_PATH = Path(__file__).with_name("schemas") / "mets-premis.xsd"
SCHEMA_LOCATION = (
    f"{METS_NS} http://www.loc.gov/standards/mets/mets.xsd "
    f"{PREMIS_NS} http://www.loc.gov/standards/premis/v3/premis.xsd"
)

OUTCOMES = ("pass", "fail", "not-checked")
RECORD_TYPE = "DANGAN-RECORD"  # OTHERMDTYPE of the descriptive dmdSecs
ARCHIVAL_CODE_TYPE = "档号"
RETENTION_PREFIX = "保管期限 "
OPEN_END = "OPEN"  # PREMIS convention for an open-ended endDate
UNIDENTIFIED_NOTE = "format not identified"
LOCAL = "local"  # identifier type of files and agents
MAX_PATH_DEPTH = 200
"""Most folders a file path may have: the physical structMap nests one div per folder, and
libxml2 refuses documents nested deeper than 256 elements."""

# Library of Congress cryptographicHashFunctions labels; algorithms without one (SM3) are
# written upper-case, others verbatim.
HASH_LABELS = {
    "md5": "MD5",
    "sha1": "SHA-1",
    "sha224": "SHA-224",
    "sha256": "SHA-256",
    "sha384": "SHA-384",
    "sha512": "SHA-512",
    "sm3": "SM3",
}
_HASH_KEYS = {label: key for key, label in HASH_LABELS.items()}

_XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_XML_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9._-]*\Z")
_UNQUOTED = re.compile(r"[A-Za-z0-9_.~/-]*")
_SCHEMA_LOCK = threading.Lock()


@dataclass(frozen=True)
class Agent:
    """A PREMIS agent: the software, organization or person behind events.

    Attributes:
        id: stable identifier value, e.g. ``"dangan-0.1.0"``, ``"siegfried-1.11.9"``.
        name: e.g. ``"Dangan"``, ``"Siegfried"``, ``"ClamAV"``.
        type: ``"software"``, ``"organization"`` or ``"person"``.
        version: written as ``premis:agentVersion``, e.g.
            ``"1.11.9; DROID_SignatureFile_V125.xml"``.
    """

    id: str
    name: str
    type: str
    version: str | None = None


@dataclass(frozen=True)
class Event:
    """A PREMIS event.

    Attributes:
        id: UUID string.
        type: PREMIS event type, e.g. ``"ingestion"``, ``"message digest calculation"``,
            ``"format identification"``, ``"virus check"``, ``"fixity check"``.
        datetime: ISO 8601 with time zone.
        outcome: ``"pass"``, ``"fail"`` or ``"not-checked"``.
        detail: eventDetail.
        outcome_detail: eventOutcomeDetailNote.
        agent_ids: linked :class:`Agent` ids.
        file_ids: linked :class:`FileEntry` ids; empty means the whole AIP.
    """

    id: str
    type: str
    datetime: str
    outcome: str
    detail: str = ""
    outcome_detail: str = ""
    agent_ids: tuple[str, ...] = ()
    file_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class FileEntry:
    """One file of the AIP.

    Attributes:
        id: XML ID (``"file-0001"``): the METS FILE ID and the PREMIS object identifier.
        path: relative to the bag root, e.g. ``"data/objects/户卷/001-申请书.pdf"``.
        original_name: the submitted relative name as received.
        size: bytes.
        digests: algorithm -> hex digest, e.g. ``{"sha256": ..., "sm3": ...}``; sha256 required.
        mime: MIME type, or None.
        puid: PRONOM id such as ``"fmt/276"``, or None when unidentified.
        format_name: format name, or None when unidentified.
        format_version: format version, or None.
        use: METS fileGrp USE: ``"original"``, ``"metadata"``, ``"submissionDocumentation"``,
            ``"preservation"`` / ``"access"`` (derivatives).
        item_id: the :class:`Item` this file belongs to, or None.
        derived_from: bag path of the file this one was made from (a derivative), or None.
            Written as a PREMIS ``derivation`` relationship ``has source`` on this file and
            ``is source of`` on its source (both by file id, which each METS assigns anew;
            the path is what stays the same from one version to the next).
    """

    id: str
    path: str
    original_name: str
    size: int
    digests: dict[str, str]
    mime: str | None
    puid: str | None
    format_name: str | None
    format_version: str | None
    use: str = "original"
    item_id: str | None = None
    derived_from: str | None = None


@dataclass(frozen=True)
class Item:
    """One descriptive record (a 件 or a 户卷/案卷) of the metadata profile.

    Attributes:
        id: XML ID, e.g. ``"item-0001"``.
        label: title (题名).
        fields: profile field name -> ``str``, ``int`` or ``list[str]``.
        level: ``"件"`` (item) or ``"户卷"``/``"案卷"`` (volume).
        parent_id: the volume item this item belongs to, or None.
    """

    id: str
    label: str
    fields: dict[str, object]
    level: str = "件"
    parent_id: str | None = None


@dataclass(frozen=True)
class Retention:
    """The retention (保管期限) decision for the AIP.

    Attributes:
        period: ``"Y"``, ``"D30"`` or ``"D10"``.
        expiry: ISO date when retention ends, None for Y.
        open_date: ISO date (开放日期) from which the records may be opened, or None.
        basis: the rule applied, e.g. ``"DRAFT retention schedule 0.1 rule 02-household"``.
    """

    period: str
    expiry: str | None
    open_date: str | None
    basis: str = ""


@dataclass(frozen=True)
class AipDescription:
    """Everything ``mets.xml`` records about one AIP.

    Attributes:
        uuid: the AIP UUID (METS OBJID, BagIt External-Identifier).
        archival_code: 档号 of the AIP (volume code), or None.
        label: human-readable title.
        created: ISO datetime of the METS document.
        creator_agent_id: id of the Dangan :class:`Agent` that wrote it.
        source_organization: the producer (transferring organization), or None.
        files, items, events, agents: the parts, in document order.
        retention: the retention decision, or None.
        profile: id of the metadata profile used, or None.
    """

    uuid: str
    archival_code: str | None
    label: str
    created: str
    creator_agent_id: str
    source_organization: str | None
    files: tuple[FileEntry, ...]
    items: tuple[Item, ...]
    events: tuple[Event, ...]
    agents: tuple[Agent, ...]
    retention: Retention | None = None
    profile: str | None = None


# --------------------------------------------------------------------------- public API


def build_mets(aip: AipDescription) -> bytes:
    """Render an AIP description as a METS 1.12 + PREMIS 3 document.

    Arguments:
        aip: the description; its files, items, events and agents must reference each other
            consistently.

    Returns:
        UTF-8 XML with an XML declaration, pretty-printed.

    Raises:
        ValueError: a value holds a character XML cannot carry (the message names the field),
            an id is not an XML name or is duplicated, a reference points nowhere, a path is not
            a normalised relative path (or is deeper than :data:`MAX_PATH_DEPTH` folders),
            sha256 is missing, or an outcome is not one of :data:`OUTCOMES`.
        TypeError: a descriptive field value is not ``str``, ``int`` or ``list[str]``.
    """
    return b"".join(_parts(aip))


def write_mets(aip: AipDescription, path: str | os.PathLike[str]) -> None:
    """Write :func:`build_mets`'s document to ``path``, part by part (the same bytes,
    without the whole document in memory at once)."""
    with open(path, "wb") as handle:
        for part in _parts(aip):
            handle.write(part)


def _parts(aip: AipDescription) -> Iterator[bytes]:
    _check_description(aip)
    # files are most of the document: when all their values are plain text, they are
    # written as text into the serialised tree (see _fill_in_files)
    return _render_parts(aip, all(_plain_file(entry) for entry in aip.files))


def _render(aip: AipDescription, plain: bool) -> bytes:
    """The METS document of a checked description; with ``plain`` files written as text."""
    return b"".join(_render_parts(aip, plain))


def _render_parts(aip: AipDescription, plain: bool) -> Iterator[bytes]:
    """:func:`_render`'s document in parts."""
    root = etree.Element(_m("mets"), nsmap=NSMAP)
    root.set(f"{{{XSI_NS}}}schemaLocation", SCHEMA_LOCATION)
    _set(root, "OBJID", aip.uuid, "aip.uuid")
    _set(root, "LABEL", aip.label, "aip.label")
    root.set("TYPE", "AIP")
    if aip.profile is not None:
        _set(root, "PROFILE", aip.profile, "aip.profile")
    _add_header(root, aip)
    for index, item in enumerate(aip.items):
        _add_dmd_sec(root, item, f"items[{index}]")
    _add_amd_sec(root, aip, plain)
    groups = _add_file_sec(root, aip.files, plain) if aip.files else {}
    _add_physical_map(root, aip, plain and bool(aip.files))
    pointers = _add_logical_map(root, aip, plain and bool(aip.files))
    xml = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    del root
    return (_fill_in_files(xml, aip.files, groups, pointers) if plain and aip.files
            else iter((xml,)))


def parse_mets(xml: bytes) -> AipDescription:
    """Read back an AIP description from a METS document written by :func:`build_mets`.

    Arguments:
        xml: the document's bytes.

    Returns:
        The description; ``parse_mets(build_mets(aip)) == aip``.

    Raises:
        ValueError: the bytes are not well-formed XML, or the document lacks a part this
            module writes (the message says which).
    """
    root = _parse_xml(xml)
    if root.tag != _m("mets"):
        raise ValueError(f"root element is {root.tag}, expected {_m('mets')}")
    header = _required(root, "mets:metsHdr")
    amd = root.find("mets:amdSec", NSMAP)
    files_by_id = _mets_files(root)
    item_links = _logical_links(root)
    return AipDescription(
        uuid=_required_attr(root, "OBJID"),
        archival_code=_archival_code(header),
        label=root.get("LABEL", ""),
        created=_required_attr(header, "CREATEDATE"),
        creator_agent_id=_creator_agent_id(header),
        source_organization=_source_organization(header),
        files=_with_sources([_parse_file(obj, files_by_id)
                             for obj in _premis(amd, "techMD", "object")]),
        items=tuple(_parse_item(wrap, item_links) for wrap in _records(root)),
        events=tuple(_parse_event(event) for event in _premis(amd, "digiprovMD", "event")),
        agents=tuple(_parse_agent(agent) for agent in _premis(amd, "digiprovMD", "agent")),
        retention=_parse_retention(_premis(amd, "rightsMD", "rights")),
        profile=root.get("PROFILE"),
    )


def validate_mets(xml: bytes) -> list[str]:
    """Validate a METS document against METS 1.12.1 with PREMIS 3.0 content.

    The wrapper schema ``schemas/mets-premis.xsd`` is loaded once and cached; PREMIS inside
    ``xmlData`` is checked too. Validation is offline.

    Arguments:
        xml: the document's bytes.

    Returns:
        ``[]`` when valid, otherwise one ``"line N: message"`` per libxml2 error (a syntax
        error, or a root that is not ``mets:mets``, is reported the same way).
    """
    try:
        root = _parse_xml(xml)
    except ValueError as exc:
        return [str(exc)]
    errors = []
    if root.tag != _m("mets"):
        errors.append(f"line {root.sourceline}: root element is {root.tag}, expected {_m('mets')}")
    with _SCHEMA_LOCK:  # an XMLSchema's error_log is shared state
        schema = _schema()
        if not schema.validate(root):
            errors.extend(f"line {error.line}: {error.message}" for error in schema.error_log)
    return errors


def path_to_href(path: str) -> str:
    """Turn a bag path into the ``xlink:href`` of its FLocat.

    Arguments:
        path: relative to the bag root, e.g. ``"data/objects/户卷/a b.pdf"``.

    Returns:
        The path relative to the folder of :data:`METS_PATH`, percent-encoded as UTF-8:

        >>> path_to_href("data/objects/户卷/a b.pdf")
        '../objects/%E6%88%B7%E5%8D%B7/a%20b.pdf'
    """
    base = _METS_FOLDER.split("/")
    parts = path.split("/")
    common = 0
    while common < len(base) and common < len(parts) - 1 and parts[common] == base[common]:
        common += 1
    relative = "/".join([".."] * (len(base) - common) + parts[common:])
    # quote() leaves these characters alone; most paths have no others
    return relative if _UNQUOTED.fullmatch(relative) else quote(relative, safe="/")


def href_to_path(href: str) -> str:
    """Turn an FLocat ``xlink:href`` back into a bag path (inverse of :func:`path_to_href`).

    Arguments:
        href: a relative, percent-encoded reference.

    Returns:
        The path relative to the bag root.

    Raises:
        ValueError: the reference is absolute or leads outside the bag.

    >>> href_to_path("../objects/%E6%88%B7%E5%8D%B7/a%20b.pdf")
    'data/objects/户卷/a b.pdf'
    """
    relative = unquote(href, errors="strict")
    path = posixpath.normpath(posixpath.join(_METS_FOLDER, relative))
    if relative.startswith("/") or path == ".." or path.startswith("../"):
        raise ValueError(f"file location {href!r} is outside the bag")
    return path


# --------------------------------------------------------------------------- checks


def _check_description(aip: AipDescription) -> None:
    """Refuse descriptions whose ids or references would make an invalid or lossy METS."""
    file_ids = _unique_ids((f.id for f in aip.files), "files")
    item_ids = _unique_ids((i.id for i in aip.items), "items")
    shared = file_ids & item_ids
    if shared:
        raise ValueError(f"ids used by both a file and an item: {sorted(shared)}")
    agent_ids = {agent.id for agent in aip.agents}
    if len(agent_ids) != len(aip.agents):
        raise ValueError("agents: duplicate agent id")
    if aip.creator_agent_id not in agent_ids:
        raise ValueError(f"aip.creator_agent_id: no agent {aip.creator_agent_id!r}")
    for index, entry in enumerate(aip.files):
        _check_file(entry, f"files[{index}] ({entry.id})", item_ids)
    _relations(aip.files)
    for index, item in enumerate(aip.items):
        if item.parent_id is not None and item.parent_id not in item_ids:
            raise ValueError(f"items[{index}] ({item.id}).parent_id: no item {item.parent_id!r}")
    _check_no_cycles(aip.items)
    for index, event in enumerate(aip.events):
        _check_event(event, f"events[{index}]", file_ids, agent_ids)


def _unique_ids(ids: Iterable[str], where: str) -> set[str]:
    seen: set[str] = set()
    for index, value in enumerate(ids):
        if not isinstance(value, str) or not _XML_NAME.match(value):
            raise ValueError(
                f"{where}[{index}].id: {value!r} is not an XML ID (a letter, then letters, "
                "digits, . _ -)"
            )
        if value in seen:
            raise ValueError(f"{where}[{index}].id: duplicate id {value!r}")
        seen.add(value)
    return seen


def _check_file(entry: FileEntry, where: str, item_ids: set[str]) -> None:
    if entry.item_id is not None and entry.item_id not in item_ids:
        raise ValueError(f"{where}.item_id: no item {entry.item_id!r}")
    if "sha256" not in entry.digests:
        raise ValueError(f"{where}.digests: sha256 is required")
    for algorithm in entry.digests:
        if not algorithm or algorithm != algorithm.lower():
            raise ValueError(f"{where}.digests: algorithm {algorithm!r} must be a lower-case name")
    if isinstance(entry.size, bool) or not isinstance(entry.size, int) or entry.size < 0:
        raise ValueError(f"{where}.size: {entry.size!r} is not a byte count")
    path = entry.path
    if (
        path in ("", ".", "..")
        or path.startswith(("/", "../"))
        or posixpath.normpath(path) != path
    ):
        raise ValueError(f"{where}.path: {path!r} is not a normalised path relative to the bag")
    if path.count("/") > MAX_PATH_DEPTH:
        raise ValueError(f"{where}.path: more than {MAX_PATH_DEPTH} folders deep")


def _check_no_cycles(items: tuple[Item, ...]) -> None:
    parents = {item.id: item.parent_id for item in items}
    for item in items:
        seen = {item.id}
        parent = item.parent_id
        while parent is not None:
            if parent in seen:
                raise ValueError(f"item {item.id!r}: parent_id chain loops through {parent!r}")
            seen.add(parent)
            parent = parents[parent]


def _check_event(event: Event, where: str, file_ids: set[str], agent_ids: set[str]) -> None:
    if event.outcome not in OUTCOMES:
        raise ValueError(f"{where}.outcome: {event.outcome!r} is not one of {OUTCOMES}")
    for file_id in event.file_ids:
        if file_id not in file_ids:
            raise ValueError(f"{where}.file_ids: no file {file_id!r}")
    for agent_id in event.agent_ids:
        if agent_id not in agent_ids:
            raise ValueError(f"{where}.agent_ids: no agent {agent_id!r}")


def _xml_text(value: str, where: str) -> str:
    """Return ``value`` if XML 1.0 can carry it; otherwise raise naming ``where``."""
    if not isinstance(value, str):
        raise TypeError(f"{where}: expected str, got {type(value).__name__}")
    bad = _XML_ILLEGAL.search(value)
    if bad:
        raise ValueError(
            f"{where}: character U+{ord(bad.group()):04X} at position {bad.start()} "
            "is not allowed in XML"
        )
    return value


# --------------------------------------------------------------------------- building


def _m(name: str) -> str:
    return f"{{{METS_NS}}}{name}"


def _p(name: str) -> str:
    return f"{{{PREMIS_NS}}}{name}"


def _set(element: etree._Element, name: str, value: str, where: str) -> None:
    element.set(name, _xml_text(value, where))


def _sub(
    parent: etree._Element, tag: str, text: str | None = None, where: str = "", **attrib: str
) -> etree._Element:
    """Append a child element; ``text`` is checked for XML-illegal characters."""
    child = etree.SubElement(parent, tag, attrib)
    if text is not None:
        child.text = _xml_text(text, where)
    return child


def _add_header(root: etree._Element, aip: AipDescription) -> None:
    header = _sub(root, _m("metsHdr"))
    _set(header, "CREATEDATE", aip.created, "aip.created")
    creator = next(agent for agent in aip.agents if agent.id == aip.creator_agent_id)
    software = _sub(header, _m("agent"), ROLE="CREATOR", TYPE="OTHER", OTHERTYPE="SOFTWARE")
    _sub(software, _m("name"), creator.name, "agent.name")
    _sub(software, _m("note"), aip.creator_agent_id, "aip.creator_agent_id")
    if aip.source_organization is not None:
        producer = _sub(
            header, _m("agent"), ROLE="OTHER", OTHERROLE="PRODUCER", TYPE="ORGANIZATION"
        )
        _sub(producer, _m("name"), aip.source_organization, "aip.source_organization")
    if aip.archival_code is not None:
        code = _sub(header, _m("altRecordID"), aip.archival_code, "aip.archival_code")
        code.set("TYPE", ARCHIVAL_CODE_TYPE)


def _add_dmd_sec(root: etree._Element, item: Item, where: str) -> None:
    dmd = _sub(root, _m("dmdSec"), ID=item.id)
    wrap = _sub(dmd, _m("mdWrap"), MDTYPE="OTHER", OTHERMDTYPE=RECORD_TYPE)
    _set(wrap, "LABEL", item.label, f"{where}.label")
    record = _sub(_sub(wrap, _m("xmlData")), f"{{{DANGAN_NS}}}record")
    for name, value in item.fields.items():
        _add_field(record, name, value, f"{where} ({item.id}).fields[{name!r}]")


def _add_field(record: etree._Element, name: str, value: object, where: str) -> None:
    if not isinstance(name, str) or not _XML_NAME.match(name):
        raise ValueError(f"{where}: field name is not an XML name")
    tag = f"{{{DANGAN_NS}}}{name}"
    if isinstance(value, str):
        _sub(record, tag, value, where)
    elif isinstance(value, int) and not isinstance(value, bool):
        _sub(record, tag, str(value), where, type="integer")
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        for index, member in enumerate(value):
            _sub(record, tag, member, f"{where}[{index}]", type="list")
        if not value:
            _sub(record, tag, type="list", empty="true")
    else:
        raise TypeError(f"{where}: {type(value).__name__} is not str, int or list[str]")


def _add_amd_sec(root: etree._Element, aip: AipDescription, plain: bool = False) -> None:
    amd = _sub(root, _m("amdSec"), ID="amdSec-aip")
    if plain and aip.files:
        amd.append(etree.Comment(_TECH_MD_MARK))
    else:
        relations = _relations(aip.files)
        for index, entry in enumerate(aip.files):
            tech = _sub(amd, _m("techMD"), ID=_tech_id(entry))
            _premis_file(_xml_data(tech, "OBJECT"), entry, f"files[{index}] ({entry.id})",
                         relations.get(entry.id, ()))
    if aip.retention is not None:
        rights = _sub(amd, _m("rightsMD"), ID="rightsMD-retention")
        _retention_rights(_xml_data(rights, "RIGHTS"), aip.retention, aip)
    for index, event in enumerate(aip.events):
        digiprov = _sub(amd, _m("digiprovMD"), ID=f"digiprovMD-event-{index + 1}")
        _premis_event(_xml_data(digiprov, "EVENT"), event, aip.uuid, f"events[{index}]")
    for index, agent in enumerate(aip.agents):
        digiprov = _sub(amd, _m("digiprovMD"), ID=f"digiprovMD-agent-{index + 1}")
        _premis_agent(_xml_data(digiprov, "AGENT"), agent, f"agents[{index}]")


def _tech_id(entry: FileEntry) -> str:
    return f"techMD-{entry.id}"


def _xml_data(section: etree._Element, entity: str) -> etree._Element:
    wrap = _sub(section, _m("mdWrap"), MDTYPE=f"PREMIS:{entity}", MDTYPEVERSION="3.0")
    return _sub(wrap, _m("xmlData"))


def _premis_root(parent: etree._Element, name: str) -> etree._Element:
    return _sub(parent, _p(name), version="3.0")


DERIVATION = "derivation"
HAS_SOURCE = "has source"
IS_SOURCE_OF = "is source of"


def _relations(files: Sequence[FileEntry]) -> dict[str, list[tuple[str, str]]]:
    """File id -> its (relationship subtype, related file id) pairs, from ``derived_from``.

    Raises:
        ValueError: a file is derived from a path that no file of the AIP has.
    """
    ids = {entry.path: entry.id for entry in files}
    relations: dict[str, list[tuple[str, str]]] = {}
    for index, entry in enumerate(files):
        if entry.derived_from is None:
            continue
        source = ids.get(entry.derived_from)
        if source is None:
            raise ValueError(f"files[{index}] ({entry.id}).derived_from: no file "
                             f"{entry.derived_from!r} in the AIP")
        relations.setdefault(entry.id, []).append((HAS_SOURCE, source))
        relations.setdefault(source, []).append((IS_SOURCE_OF, entry.id))
    return relations


def _premis_relationship(obj: etree._Element, subtype: str, related: str) -> None:
    relationship = _sub(obj, _p("relationship"))
    _sub(relationship, _p("relationshipType"), DERIVATION)
    _sub(relationship, _p("relationshipSubType"), subtype)
    _identifier(relationship, "relatedObjectIdentifier", LOCAL, related, "related file")


def _premis_file(parent: etree._Element, entry: FileEntry, where: str,
                 relations: Sequence[tuple[str, str]] = ()) -> None:
    obj = _premis_root(parent, "object")
    obj.set(f"{{{XSI_NS}}}type", "premis:file")
    _identifier(obj, "objectIdentifier", LOCAL, entry.id, f"{where}.id")
    characteristics = _sub(obj, _p("objectCharacteristics"))
    for algorithm, digest in entry.digests.items():
        fixity = _sub(characteristics, _p("fixity"))
        label = HASH_LABELS.get(algorithm, algorithm)
        _sub(fixity, _p("messageDigestAlgorithm"), label, f"{where}.digests key")
        _sub(fixity, _p("messageDigest"), digest, f"{where}.digests[{algorithm!r}]")
    _sub(characteristics, _p("size"), str(entry.size))
    _premis_format(characteristics, entry, where)
    _sub(obj, _p("originalName"), entry.original_name, f"{where}.original_name")
    for subtype, related in relations:
        _premis_relationship(obj, subtype, related)


# Files are most of a METS document: a large AIP holds tens of thousands of techMD sections
# and file elements. When every value of every file is text XML can carry (as checked by
# _plain_file; otherwise the checked builders run and name the bad value), the tree gets a
# comment where these elements go and _fill_in_files writes them there as text, exactly as
# lxml would have serialised them (the tests compare the two, byte for byte).
_TECH_MD_MARK = "dangan:techMD"
_FILE_GROUP_MARK = "dangan:fileGrp-{}"
_PHYSICAL_MARK = "dangan:physical"
_POINTERS_MARK = "dangan:fptr-{}"
_TEXT_SPECIAL = re.compile("[&<>\r]")
_ATTRIBUTE_SPECIAL = re.compile('[&<>"\n\r\t]')
_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_ATTRIBUTE_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;",
                                    "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})


def _t(value: str) -> str:
    """Element text as libxml2 serialises it."""
    return value.translate(_TEXT_ESCAPES) if _TEXT_SPECIAL.search(value) else value


def _a(value: str) -> str:
    """An attribute value as libxml2 serialises it."""
    return value.translate(_ATTRIBUTE_ESCAPES) if _ATTRIBUTE_SPECIAL.search(value) else value


def _plain_file(entry: FileEntry) -> bool:
    """Whether every text of the file is a ``str`` that XML 1.0 can carry."""
    values = [entry.id, entry.path, entry.original_name, *entry.digests, *entry.digests.values()]
    values += [v for v in (entry.mime, entry.puid, entry.format_name, entry.format_version)
               if v is not None]
    try:
        joined = "\n".join(values)
    except TypeError:
        return False
    return _XML_ILLEGAL.search(joined) is None


def _relationship_text(subtype: str, related: str) -> str:
    return ("            <premis:relationship>\n"
            f"              <premis:relationshipType>{DERIVATION}</premis:relationshipType>\n"
            f"              <premis:relationshipSubType>{subtype}</premis:relationshipSubType>\n"
            "              <premis:relatedObjectIdentifier>\n"
            f"                <premis:relatedObjectIdentifierType>{LOCAL}"
            "</premis:relatedObjectIdentifierType>\n"
            f"                <premis:relatedObjectIdentifierValue>{_t(related)}"
            "</premis:relatedObjectIdentifierValue>\n"
            "              </premis:relatedObjectIdentifier>\n"
            "            </premis:relationship>\n")


def _tech_md_text(entry: FileEntry, relations: Sequence[tuple[str, str]] = ()) -> str:
    """The techMD of one file as :func:`_premis_file` builds it, indented for its depth."""
    fixity = "".join(
        "              <premis:fixity>\n"
        f"                <premis:messageDigestAlgorithm>{_t(HASH_LABELS.get(alg, alg))}"
        "</premis:messageDigestAlgorithm>\n"
        f"                <premis:messageDigest>{_t(digest)}</premis:messageDigest>\n"
        "              </premis:fixity>\n" for alg, digest in entry.digests.items())
    name = entry.format_name
    designation = (f"                  <premis:formatName>{_t(name if name is not None else 'unknown')}"
                   "</premis:formatName>\n")
    if entry.format_version is not None:
        designation += (f"                  <premis:formatVersion>{_t(entry.format_version)}"
                        "</premis:formatVersion>\n")
    registry = "" if entry.puid is None else (
        "                <premis:formatRegistry>\n"
        "                  <premis:formatRegistryName>PRONOM</premis:formatRegistryName>\n"
        f"                  <premis:formatRegistryKey>{_t(entry.puid)}</premis:formatRegistryKey>\n"
        "                </premis:formatRegistry>\n")
    note = "" if name is not None else (
        f"                <premis:formatNote>{UNIDENTIFIED_NOTE}</premis:formatNote>\n")
    file_id = _t(entry.id)
    return (
        f'    <mets:techMD ID="techMD-{_a(entry.id)}">\n'
        '      <mets:mdWrap MDTYPE="PREMIS:OBJECT" MDTYPEVERSION="3.0">\n'
        "        <mets:xmlData>\n"
        '          <premis:object version="3.0" xsi:type="premis:file">\n'
        "            <premis:objectIdentifier>\n"
        f"              <premis:objectIdentifierType>{LOCAL}</premis:objectIdentifierType>\n"
        f"              <premis:objectIdentifierValue>{file_id}</premis:objectIdentifierValue>\n"
        "            </premis:objectIdentifier>\n"
        "            <premis:objectCharacteristics>\n"
        f"{fixity}"
        f"              <premis:size>{entry.size}</premis:size>\n"
        "              <premis:format>\n"
        "                <premis:formatDesignation>\n"
        f"{designation}"
        "                </premis:formatDesignation>\n"
        f"{registry}{note}"
        "              </premis:format>\n"
        "            </premis:objectCharacteristics>\n"
        f"            <premis:originalName>{_t(entry.original_name)}</premis:originalName>\n"
        + "".join(_relationship_text(subtype, related) for subtype, related in relations) +
        "          </premis:object>\n"
        "        </mets:xmlData>\n"
        "      </mets:mdWrap>\n"
        "    </mets:techMD>\n")


def _mets_file_text(entry: FileEntry) -> str:
    """The fileSec file element of one file as :func:`_mets_file` builds it."""
    attributes = (f'ID="{_a(entry.id)}" SIZE="{entry.size}" ADMID="techMD-{_a(entry.id)}" '
                  f'CHECKSUM="{_a(entry.digests["sha256"])}" CHECKSUMTYPE="SHA-256"')
    if entry.mime is not None:
        attributes += f' MIMETYPE="{_a(entry.mime)}"'
    if entry.item_id is not None:
        attributes += f' DMDID="{_a(entry.item_id)}"'
    return (f"      <mets:file {attributes}>\n"
            '        <mets:FLocat LOCTYPE="OTHER" OTHERLOCTYPE="SYSTEM" xlink:type="simple" '
            f'xlink:href="{_a(path_to_href(entry.path))}"/>\n'
            "      </mets:file>\n")


def _fill_in_files(xml: bytes, files: tuple[FileEntry, ...],
                   groups: dict[str, list[FileEntry]],
                   pointers: Sequence[tuple[str, list[str]]] = ()) -> Iterator[bytes]:
    """Put the files' techMD and fileSec elements where the tree holds their marks: the
    document in parts, in order, each file's elements encoded on their own (the document of
    an AIP of many files is never held as one string, nor copied whole)."""
    relations = _relations(files)
    parts = [(f"    <!--{_TECH_MD_MARK}-->\n",
              (_tech_md_text(entry, relations.get(entry.id, ())) for entry in files))]
    parts += [(f"      <!--{_FILE_GROUP_MARK.format(index)}-->\n",
               (_mets_file_text(entry) for entry in members))
              for index, members in enumerate(groups.values())]
    parts.append((f"      <!--{_PHYSICAL_MARK}-->\n", _physical_text(files)))
    parts += [(f"{pad}<!--{_POINTERS_MARK.format(index)}-->\n", _pointers_text(pad, ids))
              for index, (pad, ids) in enumerate(pointers)]
    rest = memoryview(xml)
    for mark, texts in parts:
        at = xml.find(mark.encode("ascii"), len(xml) - len(rest))
        if at < 0:
            raise RuntimeError(f"METS serialisation lost its mark {mark.strip()}")
        start = len(xml) - len(rest)
        yield bytes(rest[:at - start])
        batch: list[str] = []
        for text in texts:
            batch.append(text)
            if len(batch) == 256:
                yield "".join(batch).encode("utf-8")
                batch = []
        if batch:
            yield "".join(batch).encode("utf-8")
        rest = rest[at - start + len(mark):]
    yield bytes(rest)


def _premis_format(parent: etree._Element, entry: FileEntry, where: str) -> None:
    """Write premis:format; an unknown name is ``unknown`` plus :data:`UNIDENTIFIED_NOTE`."""
    fmt = _sub(parent, _p("format"))
    designation = _sub(fmt, _p("formatDesignation"))
    name = entry.format_name if entry.format_name is not None else "unknown"
    _sub(designation, _p("formatName"), name, f"{where}.format_name")
    if entry.format_version is not None:
        _sub(designation, _p("formatVersion"), entry.format_version, f"{where}.format_version")
    if entry.puid is not None:
        registry = _sub(fmt, _p("formatRegistry"))
        _sub(registry, _p("formatRegistryName"), "PRONOM")
        _sub(registry, _p("formatRegistryKey"), entry.puid, f"{where}.puid")
    if entry.format_name is None:
        _sub(fmt, _p("formatNote"), UNIDENTIFIED_NOTE)


def _identifier(parent: etree._Element, name: str, kind: str, value: str, where: str) -> None:
    """Write a PREMIS ``<name><nameType/><nameValue/></name>`` identifier pair."""
    element = _sub(parent, _p(name))
    _sub(element, _p(f"{name}Type"), kind)
    _sub(element, _p(f"{name}Value"), value, where)


def _premis_event(parent: etree._Element, event: Event, aip_uuid: str, where: str) -> None:
    element = _premis_root(parent, "event")
    _identifier(element, "eventIdentifier", "UUID", event.id, f"{where}.id")
    _sub(element, _p("eventType"), event.type, f"{where}.type")
    _sub(element, _p("eventDateTime"), event.datetime, f"{where}.datetime")
    if event.detail:
        detail = _sub(element, _p("eventDetailInformation"))
        _sub(detail, _p("eventDetail"), event.detail, f"{where}.detail")
    outcome = _sub(element, _p("eventOutcomeInformation"))
    _sub(outcome, _p("eventOutcome"), event.outcome, f"{where}.outcome")
    if event.outcome_detail:
        detail = _sub(outcome, _p("eventOutcomeDetail"))
        _sub(detail, _p("eventOutcomeDetailNote"), event.outcome_detail, f"{where}.outcome_detail")
    for agent_id in event.agent_ids:
        _identifier(element, "linkingAgentIdentifier", LOCAL, agent_id, f"{where}.agent_ids")
    for file_id in event.file_ids:
        _identifier(element, "linkingObjectIdentifier", LOCAL, file_id, f"{where}.file_ids")
    if not event.file_ids:  # the event concerns the whole package
        _identifier(element, "linkingObjectIdentifier", "UUID", aip_uuid, "aip.uuid")


def _premis_agent(parent: etree._Element, agent: Agent, where: str) -> None:
    element = _premis_root(parent, "agent")
    _identifier(element, "agentIdentifier", LOCAL, agent.id, f"{where}.id")
    _sub(element, _p("agentName"), agent.name, f"{where}.name")
    _sub(element, _p("agentType"), agent.type, f"{where}.type")
    if agent.version is not None:
        _sub(element, _p("agentVersion"), agent.version, f"{where}.version")


def build_premis(aip_uuid: str, identifiers: Sequence[tuple[str, str]], files: Iterable[FileEntry],
                 events: Iterable[Event], agents: Iterable[Agent]) -> etree._Element:
    """A standalone PREMIS 3 document, written by the same code that writes PREMIS into METS.

    Arguments:
        aip_uuid: the intellectual entity's UUID (what package-level events link to).
        identifiers: further ``(type, value)`` identifiers of the entity (e.g. ``("档号", …)``).
        files, events, agents: the PREMIS objects, events and agents, in document order.

    Returns:
        The ``premis:premis`` root element.

    Raises:
        ValueError: a value holds a character XML cannot carry (the message names the field).
    """
    root = etree.Element(_p("premis"), nsmap={k: NSMAP[k] for k in ("premis", "xsi")})
    root.set("version", "3.0")
    root.set(f"{{{XSI_NS}}}schemaLocation",
             f"{PREMIS_NS} http://www.loc.gov/standards/premis/v3/premis.xsd")
    entity = _sub(root, _p("object"), version="3.0")
    entity.set(f"{{{XSI_NS}}}type", "premis:intellectualEntity")
    _identifier(entity, "objectIdentifier", "UUID", aip_uuid, "aip.uuid")
    for kind, value in identifiers:
        _identifier(entity, "objectIdentifier", kind, value, f"aip.{kind}")
    files = tuple(files)
    relations = _relations(files)
    for entry in files:
        _premis_file(root, entry, f"file {entry.path}", relations.get(entry.id, ()))
    for event in events:
        _premis_event(root, event, aip_uuid, f"event {event.id}")
    for agent in agents:
        _premis_agent(root, agent, f"agent {agent.id}")
    return root

def _retention_rights(parent: etree._Element, retention: Retention, aip: AipDescription) -> None:
    """Write the retention decision as a PREMIS rights statement.

    ``rightsBasis`` is ``other``; ``otherRightsBasis`` is ``"保管期限 <period>"``; the
    applicable dates run from the METS creation date to ``expiry`` (``OPEN`` when None);
    ``basis`` is the ``otherRightsNote``; ``open_date`` is the start of a ``disseminate``
    grant. The statement links to the AIP by its UUID.
    """
    statement = _sub(_premis_root(parent, "rights"), _p("rightsStatement"))
    _identifier(statement, "rightsStatementIdentifier", LOCAL, "retention", "retention")
    _sub(statement, _p("rightsBasis"), "other")
    other = _sub(statement, _p("otherRightsInformation"))
    _sub(other, _p("otherRightsBasis"), RETENTION_PREFIX + retention.period, "retention.period")
    dates = _sub(other, _p("otherRightsApplicableDates"))
    _sub(dates, _p("startDate"), aip.created[:10], "aip.created")
    expiry = retention.expiry if retention.expiry is not None else OPEN_END
    _sub(dates, _p("endDate"), expiry, "retention.expiry")
    if retention.basis:
        _sub(other, _p("otherRightsNote"), retention.basis, "retention.basis")
    if retention.open_date is not None:
        granted = _sub(statement, _p("rightsGranted"))
        _sub(granted, _p("act"), "disseminate")
        term = _sub(granted, _p("termOfGrant"))
        _sub(term, _p("startDate"), retention.open_date, "retention.open_date")
        _sub(granted, _p("rightsGrantedNote"), "开放日期 (open date)")
    _identifier(statement, "linkingObjectIdentifier", "UUID", aip.uuid, "aip.uuid")


def _add_file_sec(root: etree._Element, files: tuple[FileEntry, ...],
                  plain: bool = False) -> dict[str, list[FileEntry]]:
    """The fileSec: one fileGrp per USE; with ``plain`` files, a mark in each group where
    :func:`_fill_in_files` writes them. Returns the files of each group."""
    file_sec = _sub(root, _m("fileSec"))
    groups: dict[str, etree._Element] = {}
    members: dict[str, list[FileEntry]] = {}
    for index, entry in enumerate(files):
        where = f"files[{index}] ({entry.id})"
        if entry.use not in groups:
            groups[entry.use] = _sub(file_sec, _m("fileGrp"))
            _set(groups[entry.use], "USE", entry.use, f"{where}.use")
            members[entry.use] = []
            if plain:
                groups[entry.use].append(etree.Comment(_FILE_GROUP_MARK.format(len(members) - 1)))
        members[entry.use].append(entry)
        if not plain:
            _mets_file(groups[entry.use], entry, where)
    return members


def _mets_file(group: etree._Element, entry: FileEntry, where: str) -> None:
    element = _sub(group, _m("file"), ID=entry.id, SIZE=str(entry.size), ADMID=_tech_id(entry))
    _set(element, "CHECKSUM", entry.digests["sha256"], f"{where}.digests['sha256']")
    element.set("CHECKSUMTYPE", "SHA-256")
    if entry.mime is not None:
        _set(element, "MIMETYPE", entry.mime, f"{where}.mime")
    if entry.item_id is not None:
        element.set("DMDID", entry.item_id)
    location = _sub(element, _m("FLocat"), LOCTYPE="OTHER", OTHERLOCTYPE="SYSTEM")
    location.set(f"{{{XLINK_NS}}}type", "simple")
    location.set(f"{{{XLINK_NS}}}href", path_to_href(_xml_text(entry.path, f"{where}.path")))


def _add_physical_map(root: etree._Element, aip: AipDescription, plain: bool = False) -> None:
    """A structMap of the bag's folders: one Directory div per folder, one Item div per file;
    with ``plain`` files, a mark in the top folder where :func:`_fill_in_files` writes the
    rest (:func:`_physical_text`)."""
    struct_map = _sub(root, _m("structMap"), TYPE="physical", LABEL="bag folders")
    folders = {"": _sub(struct_map, _m("div"), TYPE="Directory", LABEL=aip.uuid)}
    if plain:
        folders[""].append(etree.Comment(_PHYSICAL_MARK))
        return
    sub, div, fptr = etree.SubElement, _m("div"), _m("fptr")
    for entry in aip.files:
        folder, _, name = entry.path.rpartition("/")
        parent = folders.get(folder)
        if parent is None:
            parent = _folder_div(folders, folder)
        sub(sub(parent, div, TYPE="Item", LABEL=name), fptr, FILEID=entry.id)


def _pointers_text(pad: str, ids: list[str]) -> Iterator[str]:
    """An item's file pointers in the logical structMap, indented by ``pad``."""
    return (f'{pad}<mets:fptr FILEID="{_a(file_id)}"/>\n' for file_id in ids)


def _physical_text(files: tuple[FileEntry, ...]) -> Iterator[str]:
    """The divs inside the physical structMap's top folder as :func:`_add_physical_map`
    builds them, indented for their depth: each folder's children in the order they first
    appear (a folder is a str of its path, a file its (name, id))."""
    children: dict[str, list] = {"": []}

    def folder_of(folder: str) -> list:
        found = children.get(folder)
        if found is None:
            parent, _name = posixpath.split(folder)
            folder_of(parent).append(folder)
            found = children[folder] = []
        return found

    for entry in files:
        folder, _, name = entry.path.rpartition("/")
        folder_of(folder).append((name, entry.id))

    def divs(folder: str, pad: str) -> Iterator[str]:
        for child in children.pop(folder):
            if isinstance(child, str):
                yield f'{pad}<mets:div TYPE="Directory" LABEL="{_a(posixpath.split(child)[1])}">\n'
                yield from divs(child, pad + "  ")
                yield f"{pad}</mets:div>\n"
            else:
                yield (f'{pad}<mets:div TYPE="Item" LABEL="{_a(child[0])}">\n'
                       f'{pad}  <mets:fptr FILEID="{_a(child[1])}"/>\n{pad}</mets:div>\n')

    return divs("", "      ")


def _folder_div(folders: dict[str, etree._Element], folder: str) -> etree._Element:
    if folder not in folders:
        parent, name = posixpath.split(folder)
        parent_div = _folder_div(folders, parent)
        folders[folder] = _sub(parent_div, _m("div"), TYPE="Directory", LABEL=name)
    return folders[folder]


def _add_logical_map(root: etree._Element, aip: AipDescription,
                     plain: bool = False) -> list[tuple[str, list[str]]]:
    """A structMap of the descriptive items: volume -> items -> file pointers. With
    ``plain`` files, each item's file pointers are a mark where :func:`_fill_in_files`
    writes them; returns (indent, file ids) for each mark, in document order."""
    struct_map = _sub(root, _m("structMap"), TYPE="logical", LABEL="items")
    top = _sub(struct_map, _m("div"), TYPE="AIP", LABEL=aip.label)
    children: dict[str | None, list[Item]] = {}
    for item in aip.items:
        children.setdefault(item.parent_id, []).append(item)
    files: dict[str, list[str]] = {}
    for entry in aip.files:
        if entry.item_id is not None:
            files.setdefault(entry.item_id, []).append(entry.id)
    pointers: list[tuple[str, list[str]]] = []
    _item_divs(top, None, children, files, pointers if plain else None, 3)
    return pointers


def _item_divs(
    parent: etree._Element,
    parent_id: str | None,
    children: dict[str | None, list[Item]],
    files: dict[str, list[str]],
    pointers: list[tuple[str, list[str]]] | None = None,
    depth: int = 3,
) -> None:
    for item in children.get(parent_id, ()):
        div = _sub(parent, _m("div"), DMDID=item.id)
        _set(div, "TYPE", item.level, f"item {item.id}.level")
        div.set("LABEL", item.label)
        ids = files.get(item.id, ())
        if pointers is not None and ids:
            div.append(etree.Comment(_POINTERS_MARK.format(len(pointers))))
            pointers.append(("  " * (depth + 1), ids))
        else:
            for file_id in ids:
                _sub(div, _m("fptr"), FILEID=file_id)
        _item_divs(div, item.id, children, files, pointers, depth + 1)


# --------------------------------------------------------------------------- parsing


def _parse_xml(xml: bytes) -> etree._Element:
    """Parse untrusted bytes: no entity expansion, no network."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    try:
        return etree.fromstring(xml, parser)
    except etree.XMLSyntaxError as exc:
        line = exc.lineno if exc.lineno is not None else 0
        raise ValueError(f"line {line}: {exc.msg}") from exc


def _required(parent: etree._Element, path: str) -> etree._Element:
    element = parent.find(path, NSMAP)
    if element is None:
        raise ValueError(f"line {parent.sourceline}: {parent.tag} has no {path}")
    return element


def _required_attr(element: etree._Element, name: str) -> str:
    value = element.get(name)
    if value is None:
        raise ValueError(f"line {element.sourceline}: {element.tag} has no {name}")
    return value


def _text(parent: etree._Element, path: str) -> str:
    return _required(parent, path).text or ""


def _optional_text(parent: etree._Element, path: str) -> str | None:
    element = parent.find(path, NSMAP)
    return None if element is None else element.text or ""


def _archival_code(header: etree._Element) -> str | None:
    for alt in header.iterfind("mets:altRecordID", NSMAP):
        if alt.get("TYPE") == ARCHIVAL_CODE_TYPE:
            return alt.text or ""
    return None


def _header_agent(header: etree._Element, **wanted: str) -> etree._Element | None:
    """The first metsHdr agent whose attributes have the ``wanted`` values."""
    for agent in header.iterfind("mets:agent", NSMAP):
        if all(agent.get(name) == value for name, value in wanted.items()):
            return agent
    return None


def _creator_agent_id(header: etree._Element) -> str:
    agent = _header_agent(header, ROLE="CREATOR", OTHERTYPE="SOFTWARE")
    if agent is None:
        raise ValueError("metsHdr has no CREATOR SOFTWARE agent")
    return _text(agent, "mets:note")


def _source_organization(header: etree._Element) -> str | None:
    agent = _header_agent(header, ROLE="OTHER", OTHERROLE="PRODUCER")
    return None if agent is None else _text(agent, "mets:name")


def _premis(amd: etree._Element | None, section: str, name: str) -> list[etree._Element]:
    """The PREMIS ``name`` elements of every ``section`` of the amdSec, in document order."""
    if amd is None:
        return []
    path = f"mets:{section}/mets:mdWrap/mets:xmlData/premis:{name}"
    return amd.findall(path, NSMAP)


def _mets_files(root: etree._Element) -> dict[str, tuple[etree._Element, str]]:
    """METS file elements by ID, with the USE of their fileGrp."""
    found = {}
    for group in root.iterfind("mets:fileSec/mets:fileGrp", NSMAP):
        use = group.get("USE", "")
        for element in group.iterfind("mets:file", NSMAP):
            found[element.get("ID")] = (element, use)
    return found


def _parse_file(
    obj: etree._Element, files_by_id: dict[str, tuple[etree._Element, str]]
) -> FileEntry:
    file_id = _text(obj, "premis:objectIdentifier/premis:objectIdentifierValue")
    if file_id not in files_by_id:
        raise ValueError(f"line {obj.sourceline}: no METS file with ID {file_id!r}")
    element, use = files_by_id[file_id]
    characteristics = _required(obj, "premis:objectCharacteristics")
    name, version, puid = _parse_format(_required(characteristics, "premis:format"))
    return FileEntry(
        id=file_id,
        path=href_to_path(_required_attr(_required(element, "mets:FLocat"), f"{{{XLINK_NS}}}href")),
        original_name=_text(obj, "premis:originalName"),
        size=int(_text(characteristics, "premis:size")),
        digests=_parse_digests(characteristics),
        mime=element.get("MIMETYPE"),
        puid=puid,
        format_name=name,
        format_version=version,
        use=use,
        item_id=element.get("DMDID"),
        derived_from=_source_id(obj),
    )


def _source_id(obj: etree._Element) -> str | None:
    """The file id of the source a derivative names (``derivation`` / ``has source``)."""
    for relationship in obj.iterfind("premis:relationship", NSMAP):
        if (_text(relationship, "premis:relationshipType") == DERIVATION
                and _optional_text(relationship, "premis:relationshipSubType") == HAS_SOURCE):
            return _text(relationship, "premis:relatedObjectIdentifier/"
                                       "premis:relatedObjectIdentifierValue")
    return None


def _with_sources(files: list[FileEntry]) -> tuple[FileEntry, ...]:
    """The files with ``derived_from`` turned from the source's file id into its path."""
    paths = {entry.id: entry.path for entry in files}
    found = []
    for entry in files:
        if entry.derived_from is not None:
            if entry.derived_from not in paths:
                raise ValueError(f"file {entry.id}: derived from {entry.derived_from!r}, "
                                 "which is no file of the METS")
            entry = dataclasses.replace(entry, derived_from=paths[entry.derived_from])
        found.append(entry)
    return tuple(found)


def _parse_digests(characteristics: etree._Element) -> dict[str, str]:
    digests = {}
    for fixity in characteristics.iterfind("premis:fixity", NSMAP):
        label = _text(fixity, "premis:messageDigestAlgorithm")
        digests[_HASH_KEYS.get(label, label)] = _text(fixity, "premis:messageDigest")
    return digests


def _parse_format(fmt: etree._Element) -> tuple[str | None, str | None, str | None]:
    """Return (format name, version, PRONOM PUID) of a premis:format."""
    name = _optional_text(fmt, "premis:formatDesignation/premis:formatName")
    version = _optional_text(fmt, "premis:formatDesignation/premis:formatVersion")
    notes = [note.text for note in fmt.iterfind("premis:formatNote", NSMAP)]
    if UNIDENTIFIED_NOTE in notes:
        name = None
    puid = None
    registry = fmt.find("premis:formatRegistry", NSMAP)
    if registry is not None and _text(registry, "premis:formatRegistryName") == "PRONOM":
        puid = _text(registry, "premis:formatRegistryKey")
    return name, version, puid


def _logical_links(root: etree._Element) -> dict[str, tuple[str, str | None]]:
    """Map item id -> (level, parent item id) from the logical structMap."""
    links: dict[str, tuple[str, str | None]] = {}
    for struct_map in root.iterfind("mets:structMap", NSMAP):
        if struct_map.get("TYPE") == "logical":
            for div in struct_map.iter(_m("div")):
                if div.get("DMDID"):
                    parent = div.getparent()
                    links[div.get("DMDID")] = (div.get("TYPE", ""), parent.get("DMDID"))
    return links


def _records(root: etree._Element) -> list[etree._Element]:
    """The mdWrap of every dmdSec holding a Dangan record, in document order."""
    return [
        wrap
        for wrap in root.iterfind("mets:dmdSec/mets:mdWrap", NSMAP)
        if wrap.get("OTHERMDTYPE") == RECORD_TYPE
    ]


def _parse_item(wrap: etree._Element, links: dict[str, tuple[str, str | None]]) -> Item:
    item_id = _required_attr(wrap.getparent(), "ID")
    level, parent_id = links.get(item_id, ("件", None))
    record = _required(wrap, "mets:xmlData/dangan:record")
    return Item(
        id=item_id,
        label=wrap.get("LABEL", ""),
        fields=_parse_fields(record),
        level=level,
        parent_id=parent_id,
    )


def _parse_fields(record: etree._Element) -> dict[str, object]:
    fields: dict[str, object] = {}
    for element in record.iterchildren(f"{{{DANGAN_NS}}}*"):
        name = etree.QName(element).localname
        kind = element.get("type")
        if kind == "list":
            values = fields.setdefault(name, [])
            if not isinstance(values, list):
                raise ValueError(
                    f"line {element.sourceline}: field {name!r} is both list and scalar"
                )
            if element.get("empty") != "true":
                values.append(element.text or "")
        elif name in fields:
            raise ValueError(f"line {element.sourceline}: field {name!r} repeated")
        elif kind == "integer":
            fields[name] = int(element.text or "")
        else:
            fields[name] = element.text or ""
    return fields


def _parse_event(element: etree._Element) -> Event:
    outcome = _required(element, "premis:eventOutcomeInformation")
    return Event(
        id=_text(element, "premis:eventIdentifier/premis:eventIdentifierValue"),
        type=_text(element, "premis:eventType"),
        datetime=_text(element, "premis:eventDateTime"),
        outcome=_text(outcome, "premis:eventOutcome"),
        detail=_optional_text(element, "premis:eventDetailInformation/premis:eventDetail") or "",
        outcome_detail=_optional_text(
            outcome, "premis:eventOutcomeDetail/premis:eventOutcomeDetailNote"
        ) or "",
        agent_ids=_linked(element, "linkingAgentIdentifier"),
        file_ids=_linked(element, "linkingObjectIdentifier"),
    )


def _linked(element: etree._Element, name: str) -> tuple[str, ...]:
    """Values of the ``local`` identifiers among the ``name`` links of ``element``."""
    return tuple(
        _text(link, f"premis:{name}Value")
        for link in element.iterfind(f"premis:{name}", NSMAP)
        if _text(link, f"premis:{name}Type") == LOCAL
    )


def _parse_agent(element: etree._Element) -> Agent:
    return Agent(
        id=_text(element, "premis:agentIdentifier/premis:agentIdentifierValue"),
        name=_text(element, "premis:agentName"),
        type=_text(element, "premis:agentType"),
        version=_optional_text(element, "premis:agentVersion"),
    )


def _parse_retention(rights: list[etree._Element]) -> Retention | None:
    for statement in (s for r in rights for s in r.iterfind("premis:rightsStatement", NSMAP)):
        basis = _optional_text(statement, "premis:otherRightsInformation/premis:otherRightsBasis")
        if basis is not None and basis.startswith(RETENTION_PREFIX):
            return _retention_from(statement, basis.removeprefix(RETENTION_PREFIX))
    return None


def _retention_from(statement: etree._Element, period: str) -> Retention:
    other = _required(statement, "premis:otherRightsInformation")
    expiry = _optional_text(other, "premis:otherRightsApplicableDates/premis:endDate")
    open_date = None
    for granted in statement.iterfind("premis:rightsGranted", NSMAP):
        if _text(granted, "premis:act") == "disseminate":
            open_date = _optional_text(granted, "premis:termOfGrant/premis:startDate")
    return Retention(
        period=period,
        expiry=None if expiry in (None, OPEN_END) else expiry,
        open_date=open_date,
        basis=_optional_text(other, "premis:otherRightsNote") or "",
    )


# --------------------------------------------------------------------------- validation


@functools.cache
def _schema() -> etree.XMLSchema:
    """The METS + PREMIS wrapper schema, loaded from local files only."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return etree.XMLSchema(etree.parse(str(SCHEMA_PATH), parser))
