"""E-ARK export: an AIP (or what one reader may see of it, a DIP) as an E-ARK information
package — CSIP 2.1 with the E-ARK AIP or DIP profile.

Layout of the package (folder named by its OBJID; a zip holds that folder)::

    METS.xml                              root METS: CSIP profile attributes, dmdSecs, amdSec
    metadata/descriptive/dc-<n>.xml       Simple DC (oai_dc) of each record: 题名 → title …
    metadata/descriptive/dangan-<n>.xml   every field of the record (the ``dangan`` format)
    metadata/preservation/premis.xml      PREMIS 3: the files (fixity, format), events, agents
    documentation/package-info.txt        what the package holds and, for a DIP, withheld
    representations/rep1/METS.xml         the representation's files
    representations/rep1/data/…           the files, read back verified from storage
    schemas/…                             every XSD the metadata uses

The AIP package is everything an archivist sees (every file of the chosen version, the full
records, the AIP's PREMIS events); the DIP is what the given reader may see in the portal:
the same access rules (:mod:`access.rules`) through :class:`access.services.AccessService`,
so restricted files are left out and personal information is de-identified exactly as the
portal does. Every file's bytes are read back from storage verified against the catalogue's
digests; a file no copy serves intact stops the export (nothing is left at the output).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid as uuidlib
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lxml import etree

from access import rules as r
from access.oai_pmh import dangan_record, oai_dc
from access.services import AccessService
from policies import DanganError, UsageError
from storage.aip import eark as E

SOFTWARE = "Dangan"
CONTENT_TYPE = "Dangan 精准扶贫档案 (DA/T 22 documents, household volumes)"
ACCESS_SCHEMAS = Path(__file__).with_name("schemas")
# the package's schemas: (file in schemas/, where it comes from)
SCHEMA_FILES = {
    "mets.xsd": E.SCHEMAS / "mets.xsd",
    "xlink.xsd": E.SCHEMAS / "xlink.xsd",
    "premis.xsd": E.SCHEMAS / "premis.xsd",
    "csip-extension.xsd": E.SCHEMAS / "csip-extension.xsd",
    "oai_dc.xsd": ACCESS_SCHEMAS / "oai_dc.xsd",
    "simpledc20021212.xsd": ACCESS_SCHEMAS / "simpledc20021212.xsd",
    "xml.xsd": ACCESS_SCHEMAS / "xml.xsd",
    "dangan.xsd": ACCESS_SCHEMAS / "dangan.xsd",
}
MIME = {".xml": "text/xml", ".xsd": "text/xml", ".txt": "text/plain", ".json": "application/json",
        ".html": "text/html", ".pdf": "application/pdf", ".jpg": "image/jpeg",
        ".jpeg": "image/jpeg", ".tif": "image/tiff", ".tiff": "image/tiff", ".png": "image/png"}


class ExportError(DanganError):
    """The package could not be written (a file no copy serves, a bad output)."""

    exit_code = 1


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _mime(path: str, known: str | None = None) -> str:
    if known:
        return known.split(";")[0].strip()
    return MIME.get(os.path.splitext(path)[1].lower(), "application/octet-stream")


def _sha256(path: Path) -> str:
    return E.file_digest(path, "sha256")


@dataclass
class Written:
    """A file placed in the package: its package path, MIME type, size and sha256."""

    path: str
    mime: str
    size: int
    sha256: str
    created: str


@dataclass
class Package:
    """A package being written into ``root`` (a fresh temporary folder)."""

    root: Path
    objid: str
    kind: str                       # "AIP" or "DIP"
    created: str = field(default_factory=_now)
    files: dict[str, Written] = field(default_factory=dict)

    def put_bytes(self, path: str, data: bytes, mime: str | None = None) -> Written:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return self._note(path, mime)

    def put_xml(self, path: str, element: etree._Element) -> Written:
        return self.put_bytes(path, etree.tostring(element, xml_declaration=True,
                                                   encoding="UTF-8", pretty_print=True))

    def _note(self, path: str, mime: str | None = None) -> Written:
        target = self.root / path
        entry = Written(path, _mime(path, mime), target.stat().st_size, _sha256(target),
                        self.created)
        self.files[path] = entry
        return entry


# -- what goes in ---------------------------------------------------------------------------
def _reader_view(service: AccessService, reader: r.Reader, uuid: str,
                 version: int | None) -> dict[str, Any]:
    return service.aip(reader, uuid, via="eark", version=version)


def _data_path(logical: str) -> str:
    """Where a bag payload path goes in the representation's data folder."""
    for prefix in ("data/objects/", "data/"):
        if logical.startswith(prefix):
            return logical[len(prefix):]
    return logical


def build(service: AccessService, reader: r.Reader, uuid: str, version: int | None,
          dip: bool, root: Path) -> Package:
    """Write the package of ``uuid`` into the empty folder ``root``.

    Raises:
        NotFoundError / Forbidden: the reader may not see the AIP (or, for a DIP, none of its
            files).
        ExportError: a file no copy serves intact.
    """
    from access.services import Forbidden
    from policies import FixityError
    from storage.copies import NoIntactCopy

    view = _reader_view(service, reader, uuid, version)
    uuid = view["uuid"]
    files = [f for f in view["files"] if f["download"]]
    if dip and not files:
        raise Forbidden("none of this record's files is open to you")
    objid = f"{uuid}-dip" if dip else uuid
    package = Package(root / objid, objid, "DIP" if dip else "AIP")
    package.root.mkdir()
    # the files, verified on the way out (as `dangan get`: each copy hashed, only an intact
    # one kept)
    data: list[tuple[dict[str, Any], Written]] = []
    taken: set[str] = set()
    for f in files:
        ref = service.file(reader, uuid, f["path"], purpose="eark", version=version)
        payload = f["path"].startswith("data/objects/")
        name = _data_path(f["path"]) if payload else f["path"]
        if name in taken:                       # two stored paths masked alike
            stem, ext = os.path.splitext(name)
            name = f"{stem}-{len(taken)}{ext}"
        taken.add(name)
        # the AIP's own metadata, logs and bag tags: documentation of the package
        path = (f"representations/rep1/data/{name}" if payload
                else f"documentation/dangan-aip/{name}")
        try:
            service.retriever.save(ref, package.root / path)
        except (FixityError, NoIntactCopy) as exc:
            raise ExportError(f"{f['path']}: 没有可用的完好副本，导出中止 "
                              f"(no intact copy: {exc})") from exc
        written = package._note(path, f["mime"])
        if written.sha256 != f["sha256"]:
            raise ExportError(f"{f['path']}: written file differs from the catalogue's sha256")
        if payload:
            data.append((f, written))
    if not dip:
        _full_records(view, package.root / "documentation/dangan-aip/data/metadata/record.json")
    # descriptive metadata: each record the reader sees
    dmd: list[tuple[str, Written, str]] = []
    aip_part = {"uuid": uuid, "archival_code": view["archival_code"], "label": view["label"],
                "profile": view["profile"]}
    for n, item in enumerate(view["items"], 1):
        ident = f"oai:dangan:{uuid}/{item['key']}"
        dmd.append((f"dmd-dc-{n}", package.put_xml(f"metadata/descriptive/dc-{n}.xml",
                                                   oai_dc(item, ident)), "DC"))
        record = dangan_record({**item, "aip": aip_part}, ident, "schemas")
        record.set(f"{{{E.XSI_NS}}}schemaLocation", f"{record.nsmap['dangan']} "
                   "../../schemas/dangan.xsd")
        dmd.append((f"dmd-dangan-{n}", package.put_xml(
            f"metadata/descriptive/dangan-{n}.xml", record), "OTHER"))
    premis = package.put_xml("metadata/preservation/premis.xml",
                             _premis(view, data, package, dip))
    package.put_bytes("documentation/package-info.txt",
                      _info(view, data, package, dip).encode("utf-8"), "text/plain")
    for name, source in SCHEMA_FILES.items():
        package.put_bytes(f"schemas/{name}", source.read_bytes(), "text/xml")
    rep = package.put_xml("representations/rep1/METS.xml", _rep_mets(package, data))
    package.put_xml(E.ROOT_METS, _root_mets(package, view, dmd, premis, rep))
    problems = E.check_package(package.root)
    if problems:
        raise ExportError("the package fails its own E-ARK check: "
                          + "; ".join(str(p) for p in problems[:5]))
    return package


def _full_records(view: dict[str, Any], stored: Path) -> None:
    """The AIP package describes the records as the AIP holds them (its ``record.json``,
    read back verified): a view masks ID numbers even for staff."""
    import json

    if not stored.is_file():
        return
    held = {i.get("id"): i.get("fields") or {} for i in json.loads(
        stored.read_text(encoding="utf-8")).get("items", [])}
    for item in view["items"]:
        if item["key"] in held:
            item["fields"] = held[item["key"]]


# -- PREMIS -----------------------------------------------------------------------------------
def _premis(view: dict[str, Any], data: list[tuple[dict[str, Any], Written]], package: Package,
            dip: bool) -> etree._Element:
    P = E.PREMIS_NS

    def sub(parent: etree._Element, name: str, text: str | None = None, **attrs: str
            ) -> etree._Element:
        el = etree.SubElement(parent, f"{{{P}}}{name}", **attrs)
        if text is not None:
            el.text = text
        return el

    root = etree.Element(f"{{{P}}}premis", nsmap={"premis": P, "xsi": E.XSI_NS}, version="3.0")
    root.set(f"{{{E.XSI_NS}}}schemaLocation", f"{P} ../../schemas/premis.xsd")
    for n, (f, written) in enumerate(data, 1):
        obj = sub(root, "object")
        obj.set(f"{{{E.XSI_NS}}}type", "premis:file")
        ident = sub(obj, "objectIdentifier")
        sub(ident, "objectIdentifierType", "local")
        sub(ident, "objectIdentifierValue", f"file-{n:04d}")
        chars = sub(obj, "objectCharacteristics")
        fixity = sub(chars, "fixity")
        sub(fixity, "messageDigestAlgorithm", "SHA-256")
        sub(fixity, "messageDigest", f["sha256"])
        sub(chars, "size", str(f["size"]))
        fmt = sub(chars, "format")
        designation = sub(fmt, "formatDesignation")
        sub(designation, "formatName", f.get("format_name") or written.mime)
        if f.get("format_version"):
            sub(designation, "formatVersion", f["format_version"])
        if f.get("puid"):
            registry = sub(fmt, "formatRegistry")
            sub(registry, "formatRegistryName", "PRONOM")
            sub(registry, "formatRegistryKey", f["puid"])
        sub(obj, "originalName", f["path"])
    events = [] if dip else view.get("events") or []
    for e in events:
        event = sub(root, "event")
        ident = sub(event, "eventIdentifier")
        sub(ident, "eventIdentifierType", "UUID")
        sub(ident, "eventIdentifierValue", str(e["id"]))
        sub(event, "eventType", str(e["type"]))
        sub(event, "eventDateTime", str(e["at"]))
        if e.get("detail"):
            sub(event, "eventDetailInformation").append(_text(P, "eventDetail", e["detail"]))
        outcome = sub(event, "eventOutcomeInformation")
        sub(outcome, "eventOutcome", str(e["outcome"]))
    event = sub(root, "event")
    ident = sub(event, "eventIdentifier")
    sub(ident, "eventIdentifierType", "UUID")
    sub(ident, "eventIdentifierValue", str(uuidlib.uuid4()))
    sub(event, "eventType", "dissemination" if dip else "transfer")
    sub(event, "eventDateTime", package.created)
    sub(event, "eventDetailInformation").append(
        _text(P, "eventDetail", f"E-ARK {package.kind} written by {SOFTWARE}"))
    sub(sub(event, "eventOutcomeInformation"), "eventOutcome", "pass")
    link = sub(event, "linkingAgentIdentifier")
    sub(link, "linkingAgentIdentifierType", "local")
    sub(link, "linkingAgentIdentifierValue", "agent-dangan")
    agent = sub(root, "agent")
    ident = sub(agent, "agentIdentifier")
    sub(ident, "agentIdentifierType", "local")
    sub(ident, "agentIdentifierValue", "agent-dangan")
    sub(agent, "agentName", SOFTWARE)
    sub(agent, "agentType", "software")
    return root


def _text(ns: str, name: str, text: str) -> etree._Element:
    el = etree.Element(f"{{{ns}}}{name}")
    el.text = text
    return el


def _info(view: dict[str, Any], data: list[tuple[dict[str, Any], Written]], package: Package,
          dip: bool) -> str:
    lines = [f"E-ARK {package.kind} {package.objid}", f"AIP {view['uuid']}  档号 "
             f"{view['archival_code'] or '-'}  题名 {view['label']}",
             f"版本 {view['version']} / {view['current_version']}", f"写出 {package.created}",
             f"文件 {len(data)} 个 (representations/rep1/data)", ""]
    if dip:
        lines += ["本 DIP 只含该读者按利用规则可见的内容：受控文件未包含，著录中的个人信息已按门户的"
                  "方式去标识化。",
                  "This DIP holds only what the reader may see under the access rules: "
                  "restricted files are left out, personal information de-identified as the "
                  "portal shows it.", ""]
    return "\n".join(lines) + "\n"


# -- METS -------------------------------------------------------------------------------------
def _m(name: str) -> str:
    return f"{{{E.METS_NS}}}{name}"


def _c(name: str) -> str:
    return f"{{{E.CSIP_NS}}}{name}"


def _x(name: str) -> str:
    return f"{{{E.XLINK_NS}}}{name}"


def _new_mets(package: Package, objid: str, label: str, schemas: str) -> etree._Element:
    mets = etree.Element(_m("mets"), nsmap={None: E.METS_NS, "csip": E.CSIP_NS,
                                            "xlink": E.XLINK_NS, "xsi": E.XSI_NS})
    mets.set("OBJID", objid)
    mets.set("LABEL", label)
    mets.set("TYPE", "Mixed")
    mets.set(_c("CONTENTINFORMATIONTYPE"), "MIXED")
    mets.set("PROFILE", E.DIP_PROFILE if package.kind == "DIP" else E.CSIP_PROFILE)
    mets.set(f"{{{E.XSI_NS}}}schemaLocation",
             f"{E.METS_NS} {schemas}/mets.xsd {E.XLINK_NS} {schemas}/xlink.xsd "
             f"{E.CSIP_NS} {schemas}/csip-extension.xsd")
    header = etree.SubElement(mets, _m("metsHdr"), CREATEDATE=package.created,
                              LASTMODDATE=package.created, RECORDSTATUS="NEW")
    header.set(_c("OAISPACKAGETYPE"), package.kind)
    agent = etree.SubElement(header, _m("agent"), ROLE="CREATOR", TYPE="OTHER",
                             OTHERTYPE="SOFTWARE")
    etree.SubElement(agent, _m("name")).text = SOFTWARE
    note = etree.SubElement(agent, _m("note"))
    note.text = _version()
    note.set(_c("NOTETYPE"), "SOFTWARE VERSION")
    return mets


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("dangan")
    except Exception:   # not installed as a distribution (a source checkout)
        return "0"


def _group(files: etree._Element, use: str, ident: str, kind: str) -> etree._Element:
    """A fileGrp with its content information type: OTHER and what it is, on every group —
    eark-validator 1.1.3's test of CSIP63 fails a group that carries none (README, "E-ARK")."""
    group = etree.SubElement(files, _m("fileGrp"), USE=use, ID=ident)
    group.set(_c("CONTENTINFORMATIONTYPE"), "OTHER")
    group.set(_c("OTHERCONTENTINFORMATIONTYPE"), kind)
    return group


def _file(group: etree._Element, ident: str, written: Written, href: str) -> etree._Element:
    el = etree.SubElement(group, _m("file"), ID=ident, MIMETYPE=written.mime,
                          SIZE=str(written.size), CREATED=written.created,
                          CHECKSUM=written.sha256, CHECKSUMTYPE="SHA-256")
    etree.SubElement(el, _m("FLocat"), LOCTYPE="URL", **{_x("type"): "simple", _x("href"): href})
    return el


def _md_ref(parent: etree._Element, written: Written, mdtype: str, other: str | None = None
            ) -> None:
    ref = etree.SubElement(parent, _m("mdRef"), LOCTYPE="URL", MDTYPE=mdtype,
                           MIMETYPE=written.mime, SIZE=str(written.size),
                           CREATED=written.created, CHECKSUM=written.sha256,
                           CHECKSUMTYPE="SHA-256",
                           **{_x("type"): "simple", _x("href"): written.path})
    if other:
        ref.set("OTHERMDTYPE", other)


def _rep_mets(package: Package, data: list[tuple[dict[str, Any], Written]]) -> etree._Element:
    mets = _new_mets(package, f"{package.objid}-rep1", "rep1", "../../schemas")
    files = etree.SubElement(mets, _m("fileSec"), ID="rep1-filesec")
    group = _group(files, "Data", "rep1-data", CONTENT_TYPE)
    smap = etree.SubElement(mets, _m("structMap"), TYPE="PHYSICAL", LABEL="CSIP",
                            ID="rep1-structmap")
    top = etree.SubElement(smap, _m("div"), ID="rep1-div", LABEL="rep1")
    div = etree.SubElement(top, _m("div"), ID="rep1-div-data", LABEL="Data")
    for n, (_, written) in enumerate(data, 1):
        href = written.path[len("representations/rep1/"):]
        _file(group, f"file-{n:04d}", written, href)
        etree.SubElement(div, _m("fptr"), FILEID=f"file-{n:04d}")
    return mets


def _root_mets(package: Package, view: dict[str, Any], dmd: list[tuple[str, Written, str]],
               premis: Written, rep: Written) -> etree._Element:
    mets = _new_mets(package, package.objid, view["label"] or view["uuid"], "schemas")
    header = mets.find(_m("metsHdr"))
    if view.get("archival_code"):
        etree.SubElement(header, _m("altRecordID"), TYPE="REFERENCECODE").text = \
            view["archival_code"]
    for ident, written, mdtype in dmd:
        sec = etree.SubElement(mets, _m("dmdSec"), ID=ident, CREATED=written.created,
                               STATUS="CURRENT")
        _md_ref(sec, written, mdtype, None if mdtype == "DC" else "DANGAN-RECORD")
    amd = etree.SubElement(mets, _m("amdSec"))
    digi = etree.SubElement(amd, _m("digiprovMD"), ID="premis-1", CREATED=premis.created,
                            STATUS="CURRENT")
    _md_ref(digi, premis, "PREMIS")
    files = etree.SubElement(mets, _m("fileSec"), ID="filesec")
    groups = {}
    for use, ident, prefix in (("Documentation", "grp-documentation", "documentation/"),
                               ("Schemas", "grp-schemas", "schemas/")):
        group = _group(files, use, ident, f"Dangan {use.lower()}")
        groups[use] = [f"{ident}-{n}" for n, w in enumerate(
            [w for p, w in sorted(package.files.items()) if p.startswith(prefix)], 1)
            if _file(group, f"{ident}-{n}", w, w.path) is not None]
    rep_group = _group(files, "Representations/rep1", "grp-rep1", CONTENT_TYPE)
    _file(rep_group, "grp-rep1-mets", rep, rep.path)
    smap = etree.SubElement(mets, _m("structMap"), TYPE="PHYSICAL", LABEL="CSIP",
                            ID="structmap")
    top = etree.SubElement(smap, _m("div"), ID="div-package", LABEL=package.objid)
    etree.SubElement(top, _m("div"), ID="div-metadata", LABEL="Metadata",
                     DMDID=" ".join(i for i, _, _ in dmd) or None, ADMID="premis-1") \
        if dmd else etree.SubElement(top, _m("div"), ID="div-metadata", LABEL="Metadata",
                                     ADMID="premis-1")
    for use in ("Documentation", "Schemas"):
        div = etree.SubElement(top, _m("div"), ID=f"div-{use.lower()}", LABEL=use)
        for ident in groups[use]:
            etree.SubElement(div, _m("fptr"), FILEID=ident)
    reps = etree.SubElement(top, _m("div"), ID="div-representations", LABEL="Representations")
    etree.SubElement(reps, _m("fptr"), FILEID="grp-rep1-mets")
    one = etree.SubElement(reps, _m("div"), ID="div-rep1", LABEL="Representations/rep1")
    etree.SubElement(one, _m("mptr"), LOCTYPE="URL", **{_x("type"): "simple",
                                                        _x("href"): rep.path,
                                                        _x("title"): "grp-rep1"})
    return mets


# -- writing ----------------------------------------------------------------------------------
def export(service: AccessService, reader: r.Reader, uuid: str, out: Path,
           version: int | None = None, dip: bool = False) -> Path:
    """Write the package to ``out``: a folder (the package folder is made inside it) or,
    when ``out`` ends in ``.zip``, a zip holding the package folder. Nothing is left at
    ``out`` when the export fails. Returns the package folder or the zip."""
    as_zip = out.suffix.lower() == ".zip"
    if as_zip and out.exists():
        raise UsageError(f"{out}: exists")
    parent = out.parent if as_zip else out
    parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".eark-", dir=parent))
    try:
        package = build(service, reader, uuid, version, dip, work)
        if as_zip:
            partial = out.with_name(f".{out.name}.partial")
            with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as z:
                for path in sorted(package.root.rglob("*")):
                    z.write(path, f"{package.objid}/{path.relative_to(package.root).as_posix()}")
            os.replace(partial, out)
            return out
        final = out / package.objid
        if final.exists():
            raise UsageError(f"{final}: exists")
        os.replace(package.root, final)
        return final
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if as_zip:
            out.with_name(f".{out.name}.partial").unlink(missing_ok=True)

