"""Validation of a transfer that arrives as a BagIt bag (bagit-python), every problem listed.

bagit-python checks the structure (bagit.txt, bag-info, Payload-Oxum, files present and
listed); the digests are compared with the ones computed while staging, so the payload is
read once. Only an algorithm the sender used that the fixity policy does not compute costs a
second read, of the files it covers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import bagit

from ingest.findings import Problem
from ingest.staging import StagedFile
from storage.aip import hash_file


@dataclass
class BagFindings:
    """What validating a submitted bag found."""

    root: str                            # transfer-relative folder of the bag ('' = top)
    info: dict[str, str] = field(default_factory=dict)
    structure: list[Problem] = field(default_factory=list)   # bagit-python's findings
    digests: list[Problem] = field(default_factory=list)     # manifest vs bytes
    oxum: tuple[int, int] | None = None  # (bytes, files) declared by Payload-Oxum
    algorithms: tuple[str, ...] = ()


def find_bag_root(rels: list[str]) -> str | None:
    """'' if bagit.txt is at the top, 'name/' if the transfer is one folder holding a bag."""
    if "bagit.txt" in rels:
        return ""
    tops = {r.split("/", 1)[0] for r in rels}
    if len(tops) == 1:
        top = tops.pop()
        if f"{top}/bagit.txt" in rels:
            return f"{top}/"
    return None


def validate_bag(staging_root: Path, bag_root: str, files: dict[str, StagedFile]) -> BagFindings:
    """Validate the bag under ``staging_root/bag_root``; digests from ``files`` (by rel)."""
    findings = BagFindings(bag_root)
    folder = staging_root / bag_root if bag_root else staging_root
    try:
        bag = bagit.Bag(str(folder))
    except bagit.BagError as exc:
        findings.structure.append(Problem(f"BagIt 结构无效: {exc}", path=bag_root + "bagit.txt"))
        return findings
    findings.info = {k: v if isinstance(v, str) else "; ".join(v) for k, v in bag.info.items()}
    findings.algorithms = tuple(bag.algorithms)
    oxum = bag.info.get("Payload-Oxum")
    if isinstance(oxum, str) and "." in oxum:
        size, _, count = oxum.partition(".")
        if size.isdigit() and count.isdigit():
            findings.oxum = (int(size), int(count))
    try:
        bag.validate(completeness_only=True)
    except bagit.BagValidationError as exc:
        details = exc.details or []
        if not details:
            findings.structure.append(Problem(str(exc.message if hasattr(exc, "message") else exc)))
        for detail in details:
            path = getattr(detail, "path", None)
            findings.structure.append(Problem(str(detail), path=bag_root + path if path else None))
    except bagit.BagError as exc:
        findings.structure.append(Problem(str(exc)))
    for path, by_alg in sorted(bag.entries.items()):
        rel = bag_root + path
        staged = files.get(rel)
        if staged is None:
            continue  # reported by the completeness check
        for algorithm, expected in by_alg.items():
            actual = staged.digests.get(algorithm)
            if actual is None:
                actual = hash_file(staging_root / rel, [algorithm])[1][algorithm]
            if actual.lower() != expected.lower():
                findings.digests.append(Problem(f"{algorithm} 摘要不符", path=rel,
                                                expected=expected.lower(), actual=actual))
    return findings
