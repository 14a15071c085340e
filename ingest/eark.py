"""E-ARK SIP import: an E-ARK package (folder or zip) taken in as a Dangan transfer.

A transfer is recognised as E-ARK by its root ``METS.xml`` naming an E-ARK profile (or carrying
the CSIP package type); a zip may hold the package folder or the package itself. The package
is unpacked safely (the ingest's own staging: no path escapes, no links, size limits), checked
(:func:`storage.aip.eark.check_package`: structure, METS schema, the CSIP rules an importer
relies on, every referenced file present with its size and checksum — a failure names the file
and the rule, and nothing is written), and turned into the transfer the ingest knows: a BagIt
bag whose payload is the representations' data files plus an 归档文件目录 built from the
package's descriptive metadata, and whose tag folder ``eark-sip/`` keeps the package's own
METS files, metadata and documentation — so they are kept in the AIP under
``data/metadata/submission/eark-sip/``, with ``映射说明.txt``, the note of what was mapped and
what was not.

Descriptive metadata, per dmdSec (root METS) file, by namespace:

* the ``dangan`` record format (a Dangan export): every field, by its profile name;
* Dublin Core (elements 1.1 or DCMI terms, in any container, e.g. ``oai_dc``): title → 题名,
  creator → 责任者, date/created/issued → 日期, identifier → 档号, subject → 精准扶贫类别,
  rights/accessRights → 密级, type → 文种, description/abstract → 摘要, language → 语种,
  extent → 页数;
* EAD (2002 or EAD3): ``did/unittitle`` → 题名, ``unitid`` → 档号, ``unitdate`` → 日期,
  ``origination`` → 责任者, ``physdesc/extent`` → 页数.

A record is tied to its file by 计算机文件名 (the ``dangan`` format), by a structMap ``div``
whose ``DMDID`` names the record and whose ``fptr`` (or the representation METS's) names the
file, or — one record, one file — to that file. Whatever the profile requires and the package
does not say is refused by the ingest's ordinary checks, row by row.
"""

from __future__ import annotations

import csv
import io
import posixpath
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from metadata_profiles import Profile
from policies import RejectedError
from storage.aip import eark as E

DC = "http://purl.org/dc/elements/1.1/"
DCTERMS = "http://purl.org/dc/terms/"
EAD = ("urn:isbn:1-931666-22-9", "http://ead3.archivists.org/schema/")
DANGAN = "urn:x-dangan:oai:record:1"
SHEET = "归档文件目录.csv"
TAGS = "eark-sip"
NOTE = "映射说明.txt"

DC_FIELDS = {"title": "title", "creator": "creator", "date": "date", "created": "date",
             "issued": "date", "identifier": "archival_code", "subject": "jzfp_category",
             "rights": "security_class", "accessRights": "security_class", "type": "doc_type",
             "description": "abstract", "abstract": "abstract", "language": "language",
             "extent": "page_count"}
LANGUAGES = {"zh": "zho", "chi": "zho", "zho": "zho", "bo": "bod", "tib": "bod", "bod": "bod"}


class EarkRejected(RejectedError):
    """An E-ARK package that cannot be taken in: each problem names its file and rule."""

    def __init__(self, name: str, problems: list[E.Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems[:20])
        more = f"\n  … {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{name}: E-ARK 包未通过检查，未接收 (E-ARK package refused):\n"
                         f"{lines}{more}")


UNREADABLE = (OSError, ValueError, EOFError, RuntimeError, NotImplementedError,
              zipfile.BadZipFile)
"""What reading a zip's directory may raise (a name flagged UTF-8 that is not: ValueError)."""


def _zip_root(source: Path) -> str | None:
    """The package folder inside a zip ('' = its top), or None when it holds no METS.xml at
    its top or in a single top folder."""
    try:
        with zipfile.ZipFile(source) as z:
            names = z.namelist()
            if E.ROOT_METS in names:
                return ""
            tops = {n.split("/", 1)[0] for n in names if n.strip("/")}
            if len(tops) == 1:
                top = tops.pop()
                if f"{top}/{E.ROOT_METS}" in names:
                    return f"{top}/"
    except UNREADABLE:
        return None     # not E-ARK: the transfer checks say what is wrong with the zip
    return None


def is_eark(source: Path) -> bool:
    """Whether a transfer (folder or zip) is an E-ARK package."""
    source = Path(source)
    if source.is_symlink():
        return False
    if source.is_dir():
        return E.is_eark(source)
    if source.suffix.lower() != ".zip" or not source.is_file():
        return False
    root = _zip_root(source)
    if root is None:
        return False
    try:
        with zipfile.ZipFile(source) as z, z.open(f"{root}{E.ROOT_METS}") as handle:
            head = handle.read(1 << 16)
    except (*UNREADABLE, KeyError):
        return False
    return (b"earkcsip.dilcis.eu" in head or b"earksip.dilcis.eu" in head
            or b"CSIPExtensionMETS" in head)


def _package_root(staged: Path) -> Path:
    if (staged / E.ROOT_METS).is_file():
        return staged
    inner = [p for p in staged.iterdir()]
    if len(inner) == 1 and (inner[0] / E.ROOT_METS).is_file():
        return inner[0]
    return staged


# -- descriptive metadata ---------------------------------------------------------------------
@dataclass
class Record:
    """One record the package describes: the profile fields found, the dmdSec it came from,
    and what of it could not be mapped."""

    dmd: str
    source: str
    fields: dict[str, str] = field(default_factory=dict)
    unmapped: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    format: str = ""


def _text(el: etree._Element) -> str:
    return " ".join("".join(el.itertext()).split())


def _dangan_date(text: str) -> str:
    """W3CDTF (2016-05-03, 2016-05, 2016) → the profile's 日期 form (20160503…)."""
    m = re.fullmatch(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?(?:T.*)?", text.strip())
    return "".join(g for g in m.groups() if g) if m else text.strip()


def _put(record: Record, name: str, value: str, what: str) -> None:
    if not value:
        return
    if name in record.fields and record.fields[name] != value:
        record.unmapped.append(f"{what}: {value}（{name} 已取 {record.fields[name]}）")
        return
    record.fields[name] = value


def _read_record(path: Path, shown: str, dmd: str) -> Record:
    record = Record(dmd, shown)
    try:
        root = etree.parse(str(path), etree.XMLParser(no_network=True, resolve_entities=False)
                           ).getroot()
    except etree.XMLSyntaxError as exc:
        raise EarkRejected(shown, [E.Problem(shown, "XML-1", f"not well-formed XML: {exc}")])
    ns = etree.QName(root).namespace
    if ns == DANGAN:
        record.format = "dangan"
        values: dict[str, list[str]] = {}
        for el in root.iter(f"{{{DANGAN}}}field"):
            values.setdefault(el.get("name", ""), []).append((el.text or "").strip())
        for name, texts in values.items():   # a list field: one element per value
            _put(record, name, "、".join(t for t in texts if t), name)
        for tag, name in (("archivalCode", "archival_code"), ("title", "title"),
                          ("date", "date")):
            el = root.find(f"{{{DANGAN}}}{tag}")
            if el is not None and name not in record.fields:
                _put(record, name, (el.text or "").strip(), tag)
        return record
    if ns in EAD:
        record.format = "ead"
        did = next((d for d in root.iter(f"{{{ns}}}did")), None)
        if did is None:
            record.unmapped.append("EAD without did")
            return record
        for tag, name in (("unittitle", "title"), ("unitid", "archival_code"),
                          ("origination", "creator")):
            for el in did.iter(f"{{{ns}}}{tag}"):
                _put(record, name, _text(el), tag)
        for el in did.iter(f"{{{ns}}}unitdate"):
            _put(record, "date", _dangan_date(el.get("normal") or _text(el)), "unitdate")
        for el in did.iter(f"{{{ns}}}extent"):
            digits = re.match(r"\s*(\d+)", _text(el))
            if digits:
                _put(record, "page_count", digits.group(1), "extent")
        return record
    found = False
    record.format = "dc"
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        q = etree.QName(el)
        if q.namespace not in (DC, DCTERMS):
            continue
        found = True
        value, name = _text(el), DC_FIELDS.get(q.localname)
        if name is None:
            if value:
                record.unmapped.append(f"dc:{q.localname}: {value}")
            continue
        if name == "date":
            value = _dangan_date(value)
        elif name == "language":
            value = LANGUAGES.get(value.lower(), value)
        elif name == "page_count":
            digits = re.match(r"\s*(\d+)", value)
            value = digits.group(1) if digits else ""
        _put(record, name, value, f"dc:{q.localname}")
    if not found:
        record.unmapped.append(f"{shown}: metadata format {ns or '(no namespace)'} not read")
    return record


def _records(package: Path, root: etree._Element) -> list[Record]:
    out = []
    for sec in root.findall(E.q(E.METS_NS, "dmdSec")):
        for ref in sec.findall(E.q(E.METS_NS, "mdRef")):
            path = E.href_path("", ref.get(E.q(E.XLINK_NS, "href"), ""))
            if path is not None and (package / path).is_file():
                out.append(_read_record(package / path, path, sec.get("ID", "")))
    # a package with Dangan's full records (a Dangan export) describes each record in DC
    # too: the full records are read, the DC copies of them not
    if any(r.format == "dangan" for r in out):
        out = [r for r in out if r.format == "dangan"]
    return out


def _data_files(package: Path, root: etree._Element) -> dict[str, str]:
    """payload path in the transfer -> package path, of every representation's data file
    (named by its representation METS, else found in ``representations/<name>/data``)."""
    out: dict[str, str] = {}
    reps = E.representations(root)
    several = len(reps) > 1
    for name, href in reps:
        rep_path = E.href_path("", href)
        base = posixpath.dirname(rep_path or "")
        data = package / base / "data"
        for path in sorted(data.rglob("*")) if data.is_dir() else []:
            if path.is_file() and not path.is_symlink():
                rel = path.relative_to(data).as_posix()
                out[f"{name}/{rel}" if several else rel] = path.relative_to(package).as_posix()
    if not reps:
        for path in sorted((package / "representations").rglob("*")):
            parts = path.relative_to(package / "representations").parts
            if path.is_file() and len(parts) > 2 and parts[1] == "data":
                out["/".join((parts[0],) + parts[2:])] = path.relative_to(package).as_posix()
    return out


def _tie(records: list[Record], root: etree._Element, files: dict[str, str],
         package: Path) -> None:
    """Give each record the transfer file(s) it describes."""
    by_package = {v: k for k, v in files.items()}
    ids = {}
    for mets_path in [None, *(E.href_path("", h) for _, h in E.representations(root))]:
        mets = root if mets_path is None else _parse_quiet(package / mets_path)
        if mets is None:
            continue
        base = "" if mets_path is None else posixpath.dirname(mets_path)
        for f in mets.iter(E.q(E.METS_NS, "file")):
            loc = f.find(E.q(E.METS_NS, "FLocat"))
            if loc is not None:
                path = E.href_path(base, loc.get(E.q(E.XLINK_NS, "href"), ""))
                if path in by_package:
                    ids[f.get("ID", "")] = by_package[path]
        for div in mets.iter(E.q(E.METS_NS, "div")):
            dmdids = (div.get("DMDID") or "").split()
            targets = [ids[p.get("FILEID")] for p in div.iter(E.q(E.METS_NS, "fptr"))
                       if p.get("FILEID") in ids]
            for record in records:
                if record.dmd in dmdids:
                    record.files.extend(t for t in targets if t not in record.files)
    for record in records:
        name = record.fields.get("computer_filename", "").replace("\\", "/").strip("/")
        if name and name in files:
            record.files = [name]
    # one record of the package's contents (the dangan format has one per file; DC/EAD of
    # a single document), one file: that file
    if len(records) == 1 and not records[0].files and len(files) == 1:
        records[0].files = list(files)


def _parse_quiet(path: Path) -> etree._Element | None:
    try:
        return etree.parse(str(path), etree.XMLParser(no_network=True,
                                                      resolve_entities=False)).getroot()
    except (OSError, etree.XMLSyntaxError):
        return None


# -- the transfer ------------------------------------------------------------------------------
def _sheet(records: list[Record], profile: Profile) -> bytes:
    zh = {f.name: f.zh for f in profile.fields}
    system = {f.name for f in profile.fields if getattr(f, "source", None) == "system"}
    rows = []
    for record in records:
        if not record.files:
            continue
        for n, path in enumerate(record.files):
            values = {zh[k]: v for k, v in record.fields.items()
                      if k in zh and k not in system and k != "computer_filename"}
            if n:   # a record of several files: the first carries the record
                continue
            values[zh["computer_filename"]] = path
            rows.append(values)
    headings: list[str] = []
    for row in rows:
        headings += [h for h in row if h not in headings]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=headings)
    writer.writeheader()
    writer.writerows(rows)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _note(name: str, records: list[Record], files: dict[str, str], profile: Profile) -> str:
    zh = {f.name: f.zh for f in profile.fields}
    lines = [f"E-ARK 包 {name} 的著录映射 (what of the package's metadata was mapped)", ""]
    for record in records:
        lines.append(f"{record.source} ({record.dmd}) → {', '.join(record.files) or '（未对应文件）'}")
        for k, v in record.fields.items():
            lines.append(f"  {zh.get(k, k)} ← {v}" if k in zh else f"  未映射 {k}: {v}")
        for item in record.unmapped:
            lines.append(f"  未映射 not mapped: {item}")
    described = {f for r in records for f in r.files}
    for path in files:
        if path not in described:
            lines.append(f"无著录的文件 file without a record: {path}")
    return "\n".join(lines) + "\n"


@dataclass
class Converted:
    """An E-ARK package turned into a transfer bag."""

    transfer: Path
    note: str
    records: list[Record]


@contextmanager
def as_transfer(source: Path, staging: Path, profile: Profile, stage_fn) -> Iterator[Converted]:
    """The E-ARK package ``source`` as a transfer bag in a temporary folder under
    ``staging`` (removed afterwards). ``stage_fn(source, dest)`` unpacks it safely.

    Raises:
        EarkRejected: the package fails its check (each problem names file and rule).
    """
    import bagit

    staging.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="eark-", dir=staging))
    try:
        stage_fn(source, work / "unpacked")
        package = _package_root(work / "unpacked")
        problems = E.check_package(package)
        if problems:
            raise EarkRejected(source.name, problems)
        root = etree.parse(str(package / E.ROOT_METS),
                           etree.XMLParser(no_network=True, resolve_entities=False)).getroot()
        files = _data_files(package, root)
        if not files:
            raise EarkRejected(source.name, [E.Problem(
                "representations", "CSIPSTR9", "no representation holds a data file")])
        records = _records(package, root)
        _tie(records, root, files, package)
        # named by the package's OBJID: the same package as a folder or a zip is the same
        # transfer (its fingerprint)
        name = re.sub(r"[^\w.\-\u4e00-\u9fff]+", "_", root.get("OBJID") or "") or "eark"
        bag = work / name
        bag.mkdir()
        for rel, path in files.items():
            target = bag / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(package / path, target)
        if any(r.files for r in records):
            (bag / SHEET).write_bytes(_sheet(records, profile))
        header = root.find(E.q(E.METS_NS, "metsHdr"))
        created = (header.get("CREATEDATE", "") if header is not None else "")[:10]
        bagit.make_bag(str(bag), {"Source-Organization": "E-ARK SIP",
                                  "External-Description": f"E-ARK package {root.get('OBJID', '')}",
                                  **({"Bagging-Date": created} if created else {})},
                       checksums=["sha256"])
        tags = bag / TAGS
        data_paths = set(files.values())
        for path in sorted(package.rglob("*")):
            rel = path.relative_to(package).as_posix()
            if path.is_file() and rel not in data_paths:
                target = tags / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
        note = _note(root.get("OBJID") or source.name, records, files, profile)
        (tags / NOTE).write_text(note, encoding="utf-8")
        bagit.Bag(str(bag)).save(manifests=False)
        yield Converted(bag, note, records)
    finally:
        shutil.rmtree(work, ignore_errors=True)
