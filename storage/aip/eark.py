"""E-ARK information packages (CSIP 2.1 with the SIP, AIP and DIP profiles): the names both
directions share, and Dangan's own check of a package's structure and root METS.

The check covers what an exchange needs to be read safely: the CSIP folder structure
(CSIPSTR: a root ``METS.xml``, ``representations/<name>/`` folders), the METS 1.12 schema
(with the CSIP extension attributes, ``schemas/csip-extension.xsd`` here), the mandatory root
attributes and header of CSIP1–CSIP16, the file section and structural map of CSIP59–CSIP119
as far as an importer depends on them, and that every file the METS names exists inside the
package with the size and checksum it states. Each problem names its file and the rule. It
is not the E-ARK validator: ``eark-validator`` (PyPI) is run against Dangan's packages in the
tests (see README, "E-ARK").
"""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote

from lxml import etree

METS_NS = "http://www.loc.gov/METS/"
CSIP_NS = "https://DILCIS.eu/XML/METS/CSIPExtensionMETS"
SIP_NS = "https://DILCIS.eu/XML/METS/SIPExtensionMETS"
XLINK_NS = "http://www.w3.org/1999/xlink"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
PREMIS_NS = "http://www.loc.gov/premis/v3"

CSIP_PROFILE = "https://earkcsip.dilcis.eu/profile/E-ARK-CSIP.xml"
SIP_PROFILE = "https://earksip.dilcis.eu/profile/E-ARK-SIP.xml"
DIP_PROFILE = "https://earkdip.dilcis.eu/profile/E-ARK-DIP.xml"
PROFILES = (CSIP_PROFILE, SIP_PROFILE, DIP_PROFILE)
PACKAGE_TYPES = ("SIP", "AIP", "AIU", "DIP", "AIC")
CHECKSUM_TYPES = {"SHA-256": "sha256", "SHA-512": "sha512", "SHA-1": "sha1", "MD5": "md5",
                  "SHA-384": "sha384"}

SCHEMAS = Path(__file__).with_name("schemas")
ROOT_METS = "METS.xml"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a package: the file it is in, the rule, and what is wrong."""

    file: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: [{self.rule}] {self.message}"


def q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


@lru_cache(maxsize=1)
def mets_schema() -> etree.XMLSchema:
    """METS 1.12 with xlink and the CSIP extension attributes, all from local copies."""
    wrapper = f"""<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
      <xs:import namespace="{XLINK_NS}" schemaLocation="{(SCHEMAS / 'xlink.xsd').as_uri()}"/>
      <xs:import namespace="{METS_NS}" schemaLocation="{(SCHEMAS / 'mets.xsd').as_uri()}"/>
      <xs:import namespace="{CSIP_NS}"
                 schemaLocation="{(SCHEMAS / 'csip-extension.xsd').as_uri()}"/>
    </xs:schema>"""
    return etree.XMLSchema(etree.fromstring(wrapper.encode()))


def is_eark(folder: Path) -> bool:
    """Whether a folder is an E-ARK package: a root ``METS.xml`` whose ``mets`` element names
    one of the E-ARK profiles (or carries the CSIP package type)."""
    mets = folder / ROOT_METS
    if not mets.is_file():
        return False
    try:
        for _, element in etree.iterparse(str(mets), events=("start",), no_network=True,
                                          resolve_entities=False):
            return element.tag == q(METS_NS, "mets") and (
                element.get("PROFILE", "") in PROFILES
                or element.get("PROFILE", "").startswith("https://earkcsip.dilcis.eu/")
                or q(CSIP_NS, "CONTENTINFORMATIONTYPE") in element.attrib)
    except etree.XMLSyntaxError:
        return True   # a METS.xml at the root that is not XML: checked (and refused) as E-ARK
    return False


def parse(path: Path, shown: str, problems: list[Problem]) -> etree._Element | None:
    """A METS document parsed safely (no network, no entities) and checked against the
    schema; None (and the problem noted) when it is not well-formed."""
    parser = etree.XMLParser(no_network=True, resolve_entities=False, huge_tree=False)
    try:
        root = etree.parse(str(path), parser).getroot()
    except (OSError, etree.XMLSyntaxError) as exc:
        problems.append(Problem(shown, "XML-1", f"not well-formed XML: {exc}"))
        return None
    schema = mets_schema()
    if not schema.validate(root):
        for error in list(schema.error_log)[:5]:
            problems.append(Problem(shown, "METS-XSD", f"line {error.line}: {error.message}"))
    return root


def href_path(base: str, href: str) -> str | None:
    """The package path an ``xlink:href`` of a METS in folder ``base`` names (None: it leaves
    the package, or is absolute or a URL)."""
    href = unquote(href)
    if not href or href.startswith("/") or "://" in href or href.startswith("file:"):
        return None
    joined = posixpath.normpath(posixpath.join(base, href))
    if joined == ".." or joined.startswith("../"):
        return None
    return joined


def file_digest(path: Path, algorithm: str) -> str:
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def _references(root: etree._Element) -> list[tuple[etree._Element, str, str]]:
    """(element, its ID, href) of every file and metadata reference of a METS."""
    out = []
    for file in root.iter(q(METS_NS, "file")):
        loc = file.find(q(METS_NS, "FLocat"))
        out.append((file, file.get("ID", ""), "" if loc is None else loc.get(q(XLINK_NS, "href"), "")))
    for ref in root.iter(q(METS_NS, "mdRef")):
        out.append((ref, ref.get("ID", ""), ref.get(q(XLINK_NS, "href"), "")))
    return out


def check_references(package: Path, base: str, root: etree._Element, shown: str,
                     problems: list[Problem]) -> list[str]:
    """Every file a METS (in package folder ``base``) names: inside the package, present, of
    the stated size and checksum. Returns the package paths named."""
    named = []
    for element, ident, href in _references(root):
        what = f"{etree.QName(element).localname} {ident or '(no ID)'}"
        path = href_path(base, href)
        if path is None:
            problems.append(Problem(shown, "CSIP79", f"{what}: xlink:href {href!r} does not "
                                    "name a file inside the package"))
            continue
        target = package / path
        if not target.is_file() or target.is_symlink():
            problems.append(Problem(shown, "CSIP79", f"{what}: {path} is not in the package"))
            continue
        named.append(path)
        size = element.get("SIZE")
        if size is not None and size.isdigit() and int(size) != target.stat().st_size:
            problems.append(Problem(shown, "CSIP69", f"{what}: {path} has {target.stat().st_size}"
                                    f" bytes, the METS says {size}"))
        kind, value = element.get("CHECKSUMTYPE"), element.get("CHECKSUM")
        if kind and value:
            algorithm = CHECKSUM_TYPES.get(kind)
            if algorithm is None:
                problems.append(Problem(shown, "CSIP72", f"{what}: checksum type {kind} "
                                        "is not supported"))
            elif file_digest(target, algorithm) != value.lower():
                problems.append(Problem(shown, "CSIP71", f"{what}: {path} does not match its "
                                        f"{kind} checksum"))
    return named


def check_root(root: etree._Element, shown: str, problems: list[Problem]) -> None:
    """The CSIP rules on the root element, header, file section and structural map that an
    importer relies on."""
    def need(ok: bool, rule: str, message: str) -> None:
        if not ok:
            problems.append(Problem(shown, rule, message))

    if root.tag != q(METS_NS, "mets"):
        need(False, "CSIP1000", "the root element is not mets:mets")
        return
    need(bool(root.get("OBJID")), "CSIP1", "mets/@OBJID is missing")
    need(bool(root.get("TYPE")), "CSIP2", "mets/@TYPE (content category) is missing")
    need(bool(root.get("PROFILE")), "CSIP6", "mets/@PROFILE is missing")
    header = root.find(q(METS_NS, "metsHdr"))
    need(header is not None, "CSIP117", "mets/metsHdr is missing")
    if header is not None:
        need(bool(header.get("CREATEDATE")), "CSIP7", "metsHdr/@CREATEDATE is missing")
        kind = header.get(q(CSIP_NS, "OAISPACKAGETYPE"))
        need(kind in PACKAGE_TYPES, "CSIP9",
             f"metsHdr/@csip:OAISPACKAGETYPE is {kind!r}, not one of {', '.join(PACKAGE_TYPES)}")
        agents = [a for a in header.findall(q(METS_NS, "agent")) if a.get("ROLE") == "CREATOR"
                  and a.get("TYPE") == "OTHER" and a.get("OTHERTYPE") == "SOFTWARE"]
        need(bool(agents), "CSIP10",
             "metsHdr has no agent ROLE=CREATOR TYPE=OTHER OTHERTYPE=SOFTWARE")
    files = root.find(q(METS_NS, "fileSec"))
    groups = [] if files is None else files.findall(q(METS_NS, "fileGrp"))
    need(any(g.get("USE", "").startswith("Representations") for g in groups), "CSIP114",
         "no fileGrp with USE=\"Representations/...\"")
    maps = [s for s in root.findall(q(METS_NS, "structMap")) if s.get("TYPE") == "PHYSICAL"]
    need(bool(maps), "CSIP80", "no structMap TYPE=PHYSICAL")


def representations(root: etree._Element) -> list[tuple[str, str]]:
    """(name, METS href) of each representation the root METS points to with an ``mptr``
    (structMap div labelled ``Representations/<name>``)."""
    out = []
    for div in root.iter(q(METS_NS, "div")):
        label = div.get("LABEL", "")
        if label.lower().startswith("representations/"):
            for mptr in div.findall(q(METS_NS, "mptr")):
                out.append((label.split("/", 1)[1], mptr.get(q(XLINK_NS, "href"), "")))
    return out


def check_package(package: Path) -> list[Problem]:
    """Every problem found in an E-ARK package folder (empty: it may be read)."""
    problems: list[Problem] = []
    root_mets = package / ROOT_METS
    if not root_mets.is_file():
        return [Problem(ROOT_METS, "CSIPSTR4", "the package has no root METS.xml")]
    root = parse(root_mets, ROOT_METS, problems)
    if root is None:
        return problems
    check_root(root, ROOT_METS, problems)
    check_references(package, "", root, ROOT_METS, problems)
    if (package / "representations").exists() and not (package / "representations").is_dir():
        problems.append(Problem("representations", "CSIPSTR9", "is not a folder"))
    for name, href in representations(root):
        path = href_path("", href)
        if path is None or not (package / path).is_file():
            problems.append(Problem(ROOT_METS, "CSIP110",
                                    f"representation {name}: METS {href!r} is not in the package"))
            continue
        rep = parse(package / path, path, problems)
        if rep is not None:
            check_references(package, posixpath.dirname(path), rep, path, problems)
    return problems
