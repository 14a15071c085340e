"""Comparing what a stored copy holds with the catalogue and with the bag's own manifests.

Every problem is a :class:`Finding` with a stable ``kind``; all of them are collected and
reported together, never only the first. Kinds:

============== ===================================================================
missing        a file the catalogue or a manifest lists is not in the copy
changed        the bytes differ from the recorded digest (or the size is larger)
truncated      the file is shorter than recorded
untracked      a file in the copy that neither the catalogue nor a manifest lists
tag-altered    a bag tag file (bagit.txt, bag-info.txt, a manifest) differs
manifest       a manifest entry disagrees with the catalogue or omits a payload file
unreadable     the file could not be read (I/O or server error)
============== ===================================================================
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from urllib.parse import unquote

from storage.aip import VERSIONS
from storage.fixity.scan import FileResult
from storage.locations import ExpectedFile, ObjectInfo

KIND_LABELS = {
    "missing": "缺失",
    "changed": "内容被改变",
    "truncated": "被截断",
    "untracked": "多余文件（未登记）",
    "tag-altered": "标签文件被改动",
    "manifest": "清单条目不一致",
    "unreadable": "无法读取",
}
"""Chinese names of the finding kinds, for reports."""


@dataclass(frozen=True)
class Finding:
    """One difference between a stored copy and what it must hold.

    Attributes:
        kind: see the module docstring.
        path: the bag-relative path.
        algorithm: the digest algorithm compared (``size`` when sizes differ).
        expected, actual: the recorded and the found value.
        message: a sentence for people.
    """

    kind: str
    path: str
    algorithm: str = ""
    expected: str = ""
    actual: str = ""
    message: str = ""

    @property
    def is_tag(self) -> bool:
        """Whether the path is a bag tag file (top level of the bag)."""
        return is_tag_file(self.path)

    def to_dict(self) -> dict[str, str]:
        """Plain data for JSON, the catalogue and reports."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, str]) -> Finding:
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: str(v) for k, v in data.items() if k in cls.__dataclass_fields__})


def is_tag_file(path: str) -> bool:
    """Bag tag files sit at the top of the bag; the payload is under ``data/``."""
    return "/" not in path


def manifest_algorithm(path: str) -> tuple[str, str] | None:
    """``("payload"|"tag", algorithm)`` for a manifest file name, else None."""
    for prefix, kind in (("tagmanifest-", "tag"), ("manifest-", "payload")):
        if path.startswith(prefix) and path.endswith(".txt"):
            return kind, path[len(prefix):-4].lower()
    return None


def parse_manifest(text: str) -> dict[str, str]:
    """BagIt manifest lines ``<digest> <path>`` -> {path: lower-case digest}."""
    entries: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip():
            digest, _, path = line.partition(" ")
            path = path.strip()
            entries[unquote(path.replace("%0D", "\r").replace("%0A", "\n"))] = digest.lower()
    return entries


@dataclass
class Manifests:
    """The entries of a copy's manifests: algorithm -> {path: digest}, payload and tag."""

    payload: dict[str, dict[str, str]]
    tag: dict[str, dict[str, str]]

    def paths(self) -> set[str]:
        """Every path some manifest lists."""
        listed: set[str] = set()
        for entries in (*self.payload.values(), *self.tag.values()):
            listed.update(entries)
        return listed

    def entries_for(self, path: str) -> dict[str, str]:
        """{algorithm: digest} the manifests give for one path."""
        found = {}
        for group in (self.payload, self.tag):
            for algorithm, entries in group.items():
                if path in entries:
                    found[algorithm] = entries[path]
        return found


def algorithm_chooser(expected: Mapping[str, ExpectedFile], manifests: Manifests,
                      available: Iterable[str]) -> Callable[[str], tuple[str, ...]]:
    """A function giving every recorded algorithm of a file (catalogue and manifests),
    sha256 first, limited to those hashlib has."""
    groups = [*manifests.payload.items(), *manifests.tag.items()]
    usable = frozenset(available)
    cache: dict[frozenset[str], tuple[str, ...]] = {}

    by_names: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[str, ...]] = {}

    def choose(path: str) -> tuple[str, ...]:
        # called for every file of the AIP: the answer is cached by the names as found
        want = expected.get(path)
        recorded = tuple(want.digests) if want is not None else ()
        listed = tuple(algorithm for algorithm, entries in groups if path in entries)
        found = by_names.get((recorded, listed))
        if found is None:
            key = frozenset(recorded) | frozenset(listed)
            found = cache.get(key)
            if found is None:
                found = tuple(sorted((key & usable) or {"sha256"},
                                     key=lambda n: (n != "sha256", n)))
                cache[key] = found
            by_names[(recorded, listed)] = found
        return found

    return choose


def compare_full(expected: Mapping[str, ExpectedFile], listing: Mapping[str, ObjectInfo],
                 results: Mapping[str, FileResult], manifests: Manifests) -> list[Finding]:
    """Findings of a full check: every listed file was read (``results``).

    Arguments:
        expected: the catalogue's files of the AIP (path -> size and digests).
        listing: what the copy holds (path -> ObjectInfo).
        results: what reading each file gave.
        manifests: the entries of the copy's own manifests.
    """
    known = set(expected) | manifests.paths()
    findings = [Finding("missing", p, message=f"{p}: not in the copy")
                for p in sorted(known - set(listing))]
    findings += [Finding("untracked", p, "size", "", str(listing[p].size),
                         f"{p}: in the copy but in neither the catalogue nor a manifest")
                 for p in sorted(set(listing) - known)]
    groups = [*manifests.payload.items(), *manifests.tag.items()]
    for path in sorted(known & set(listing)):
        result, want = results.get(path), expected.get(path)
        if result is None or result.error:
            reason = result.error if result else "not read"
            findings.append(Finding("unreadable", path, message=f"{path}: {reason}"))
            continue
        if want is not None and result.size == want.size and _agrees(result.digests, want, groups,
                                                                     path):
            continue            # the usual case, decided without building anything
        findings.extend(_file_findings(path, want, result))
        findings.extend(_manifest_findings(path, want, result, manifests))
    findings.extend(_omitted_from_manifests(expected, manifests))
    return findings


def _agrees(digests: Mapping[str, str], want: ExpectedFile,
            groups: list[tuple[str, dict[str, str]]], path: str) -> bool:
    for algorithm, value in want.digests.items():
        if digests.get(algorithm) != value:
            return False
    for algorithm, entries in groups:
        listed = entries.get(path)
        if listed is not None and digests.get(algorithm, listed) != listed:
            return False
    return True


def _file_findings(path: str, want: ExpectedFile | None, got: FileResult) -> list[Finding]:
    if want is None:
        return []
    tag = is_tag_file(path)
    wrong = [(alg, value, got.digests.get(alg, "")) for alg, value in want.digests.items()
             if got.digests.get(alg) != value]
    if got.size < want.size:
        alg, value, actual = wrong[0] if wrong else ("size", str(want.size), str(got.size))
        return [Finding("tag-altered" if tag else "truncated", path, alg, value, actual,
                        f"{path}: {got.size} bytes, {want.size} recorded")]
    if got.size != want.size or wrong:
        alg, value, actual = wrong[0] if wrong else ("size", str(want.size), str(got.size))
        algorithms = ", ".join(w[0] for w in wrong) or "size"
        return [Finding("tag-altered" if tag else "changed", path, alg, value, actual,
                        f"{path}: {algorithms} differs from the catalogue"
                        + (f" ({got.size} bytes, {want.size} recorded)"
                           if got.size != want.size else ""))]
    return []


def _manifest_findings(path: str, want: ExpectedFile | None, got: FileResult,
                       manifests: Manifests) -> list[Finding]:
    findings = []
    for algorithm, listed in sorted(manifests.entries_for(path).items()):
        actual = got.digests.get(algorithm)
        if actual is None or actual == listed:
            continue
        if want is not None and want.digests.get(algorithm) not in (None, actual):
            continue            # the file itself changed: already a finding
        findings.append(Finding("manifest", path, algorithm, listed, actual,
                                f"{path}: the manifest's {algorithm} entry does not match "
                                "the file"))
    if want is None:
        findings.append(Finding("manifest", path, message=f"{path}: listed in a manifest but "
                                "unknown to the catalogue"))
    return findings


def _omitted_from_manifests(expected: Mapping[str, ExpectedFile],
                            manifests: Manifests) -> list[Finding]:
    # the top-level manifests are version 1's; an object of a later version is listed by its
    # version's own manifests and inventory (storage/aip/versions.py), checked as a file
    findings = []
    for algorithm, entries in sorted(manifests.payload.items()):
        for path in sorted(p for p in expected if not is_tag_file(p) and p not in entries
                           and not p.startswith(VERSIONS)):
            findings.append(Finding("manifest", path, algorithm, expected[path].digests.get(
                algorithm, ""), "", f"{path}: missing from manifest-{algorithm}.txt"))
    return findings


def stored_checksum_hex(value: str | None) -> str | None:
    """A backend's stored SHA-256 as hex: accepts hex or base64; None when not comparable
    (absent, or a multipart composite such as ``…-3``)."""
    text = (value or "").strip()
    if not text or re.search(r"-\d+$", text):
        return None
    if len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text):
        return text.lower()
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 32 else None


def compare_quick(expected: Mapping[str, ExpectedFile],
                  listing: Mapping[str, ObjectInfo]) -> tuple[list[Finding], int]:
    """Findings of a quick check (no bytes read): presence, size, stored checksum.

    Returns:
        (findings, number of files whose stored checksum could be compared).
    """
    findings = [Finding("missing", p, message=f"{p}: not in the copy")
                for p in sorted(set(expected) - set(listing))]
    findings += [Finding("untracked", p, "size", "", str(listing[p].size),
                         f"{p}: in the copy but not in the catalogue")
                 for p in sorted(set(listing) - set(expected))]
    compared = 0
    for path in sorted(set(expected) & set(listing)):
        want, info = expected[path], listing[path]
        tag = is_tag_file(path)
        if info.size != want.size:
            kind = "tag-altered" if tag else ("truncated" if info.size < want.size else "changed")
            findings.append(Finding(kind, path, "size", str(want.size), str(info.size),
                                    f"{path}: {info.size} bytes, {want.size} recorded"))
            continue
        stored = stored_checksum_hex(info.checksum_sha256)
        if stored is None or "sha256" not in want.digests:
            continue
        compared += 1
        if stored != want.digests["sha256"]:
            findings.append(Finding("tag-altered" if tag else "changed", path, "sha256",
                                    want.digests["sha256"], stored,
                                    f"{path}: the stored checksum differs from the catalogue"))
    return findings, compared
