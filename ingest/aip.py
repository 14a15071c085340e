"""Building an AIP bag in staging (BagIt 1.0, exploded, METS + PREMIS inside).

Layout (DESIGN.md, "The AIP")::

    <uuid>/bagit.txt bag-info.txt manifest-<alg>.txt tagmanifest-<alg>.txt
    <uuid>/data/objects/…                 the submitted files, transfer paths kept (NFC)
    <uuid>/data/preservation/…            preservation copies (``<path>.<ext>``, ingest.normalise)
    <uuid>/data/access/…                  access copies, likewise
    <uuid>/data/metadata/mets.xml         METS 1.12 + PREMIS 3
    <uuid>/data/metadata/record.json      the profile record(s)
    <uuid>/data/metadata/submission/…     the sender's catalogue sheet and bag tag files
    <uuid>/data/logs/ingest-report.json, ingest-report.html

The payload files are moved (renamed) from the staged transfer, never copied again; their
digests are the ones computed while staging.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ingest.analysis import Analysis, Unit
from ingest.formats import FormatInfo, identify
from ingest.staging import StagedFile
from storage.aip import hash_file
from storage.locations import ExpectedFile
from storage.aip import AipDescription, Agent, Event, FileEntry, Item, Retention, write_mets

BAGIT_TXT = "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
PROFILE_ID = "urn:dangan:bagit-profile:aip:1"


@dataclass
class BuiltAip:
    """An AIP bag ready in staging."""

    uuid: str
    folder: Path
    expected: dict[str, ExpectedFile]
    description: AipDescription
    record: dict
    payload_bytes: int


def _manifest_line(digest: str, path: str) -> str:
    # BagIt 1.0 §2.1.3: only CR, LF and % are percent-encoded in manifest paths
    return f"{digest}  {path.replace('%', '%25').replace(chr(13), '%0D').replace(chr(10), '%0A')}\n"


def _file_id(index: int) -> str:
    return f"file-{index:06d}"


def build_aip(*, uuid: str, unit: Unit, analysis: Analysis, folder: Path,
              algorithms: tuple[str, ...], items: list[Item], item_of: dict[str, str],
              record: dict,
              events: list[Event], agents: list[Agent], retention: Retention | None,
              report_files: list[Path], source_organization: str | None,
              dangan_agent: str, derived_files: list[tuple[str, Path]] = (),
              derivatives: Sequence[Any] = (),
              derivative_events: Callable[[dict[str, str]], list[Event]] | None = None,
              identify_files: Callable[[list[Path]], list[FormatInfo]] = identify,
              ) -> BuiltAip:
    """Assemble one AIP bag in ``folder`` (which must not exist) and return what it holds.

    ``item_of`` maps content-relative paths to the id of the item describing the file;
    ``derived_files`` are (bag path, file) pairs of derived data (full text) to include;
    ``derivatives`` are preservation and access copies
    (:class:`ingest.normalise.at_ingest.DerivedFile`), moved in after the payload, each
    belonging to its source's item; ``derivative_events`` is called with bag path -> file id
    and returns their events (appended to ``events``); ``identify_files`` identifies the
    metadata, report and text files (by default :func:`ingest.formats.identify`).
    """
    data = folder / "data"
    (data / "objects").mkdir(parents=True)
    (data / "metadata").mkdir()
    (data / "logs").mkdir()
    entries: list[FileEntry] = []
    digests: dict[str, dict[str, str]] = {}
    sizes: dict[str, int] = {}
    # plain strings: a unit may hold tens of thousands of files
    bag, skip = str(folder), len(analysis.content_prefix)
    payload = sorted(unit.files, key=lambda f: f.rel)
    _move_payload(payload, analysis, f"{bag}/data/objects")
    unknown = FormatInfo(None, None, None, None)
    for staged in payload:
        rel = staged.rel[skip:]
        path = f"data/objects/{rel}"
        fmt = analysis.formats.get(rel) or unknown
        entries.append(FileEntry(id=_file_id(len(entries) + 1), path=path,
                                 original_name=staged.original_name, size=staged.size,
                                 digests=staged.digests, mime=fmt.mime, puid=fmt.puid,
                                 format_name=fmt.format_name, format_version=fmt.format_version,
                                 use="original", item_id=item_of.get(rel)))
        # one digest dict per file, shared by the staged file, METS and the bag's manifests
        digests[path], sizes[path] = staged.digests, staged.size
    item_by_path = {e.path: e.item_id for e in entries}
    for derived in derivatives:      # preservation and access copies, beside the payload
        target = folder / derived.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(derived.file, target)
        size, found = hash_file(target, algorithms)
        fmt = derived.format
        entries.append(FileEntry(id=_file_id(len(entries) + 1), path=derived.path,
                                 original_name=derived.path.rsplit("/", 1)[-1], size=size,
                                 digests=found, mime=fmt.mime, puid=fmt.puid,
                                 format_name=fmt.format_name, format_version=fmt.format_version,
                                 use=derived.use, item_id=item_by_path.get(derived.derived_from),
                                 derived_from=derived.derived_from))
        digests[derived.path], sizes[derived.path] = found, size
    extra: list[tuple[str, Path, str]] = []
    for staged in analysis.submission:
        extra.append((f"data/metadata/submission/{staged.rel}", analysis.staged.root / staged.rel,
                      "submissionDocumentation"))
    for report in report_files:
        extra.append((f"data/logs/{report.name}", report, "metadata"))
    for path, source in derived_files:      # full text extracted from the payload
        extra.append((path, source, "text"))
    record_path = data / "metadata" / "record.json"
    record_path.write_text(json.dumps(record, ensure_ascii=False, indent=2, sort_keys=True),
                           encoding="utf-8")
    extra.append(("data/metadata/record.json", record_path, "metadata"))
    extra_formats = identify_files([p for _, p, _ in extra])
    for (path, source, use), fmt in zip(extra, extra_formats):
        target = folder / path
        if source != target:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        size, found = hash_file(target, algorithms)
        entries.append(FileEntry(id=_file_id(len(entries) + 1), path=path,
                                 original_name=path.rsplit("/", 1)[-1], size=size, digests=found,
                                 mime=fmt.mime, puid=fmt.puid, format_name=fmt.format_name,
                                 format_version=fmt.format_version, use=use))
        digests[path], sizes[path] = found, size
    if derivative_events is not None:
        events = [*events, *derivative_events({e.path: e.id for e in entries})]
    description = AipDescription(
        uuid=uuid, archival_code=unit.archival_code, label=unit.label,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        creator_agent_id=dangan_agent, source_organization=source_organization or None,
        files=tuple(entries), items=tuple(items), events=tuple(events), agents=tuple(agents),
        retention=retention, profile=analysis.profile.id)
    mets_path = data / "metadata" / "mets.xml"
    write_mets(description, mets_path)
    sizes["data/metadata/mets.xml"], digests["data/metadata/mets.xml"] = hash_file(mets_path, algorithms)
    payload_bytes = sum(sizes.values())
    _write_tag_files(folder, uuid, unit, algorithms, digests, sizes, source_organization)
    read_back = {f"data/objects/{f.rel[skip:]}": f.read_back for f in payload if f.read_back}
    expected = {p: ExpectedFile(sizes[p], digests[p], read_back.get(p)) for p in digests}
    for name in _tag_names(folder):
        size, found = hash_file(folder / name, algorithms)
        expected[name] = ExpectedFile(size, found)
    return BuiltAip(uuid, folder, expected, description, record, payload_bytes)


def _move_payload(payload: list[StagedFile], analysis: Analysis, objects: str) -> None:
    """Move the unit's files from staging into the bag's (empty) ``objects`` folder.

    When the unit holds every file of the transfer's content folder (one AIP for the whole
    transfer, no sheet or quarantined file in that folder), the folder itself is renamed:
    one operation instead of one per file.
    """
    prefix, skip = analysis.content_prefix, len(analysis.content_prefix)
    root = str(analysis.staged.root)
    content = f"{root}/{prefix.rstrip('/')}" if prefix else root
    inside = sum(1 for f in analysis.staged.files if f.rel.startswith(prefix))
    if payload and inside == len(payload):
        os.rmdir(objects)
        os.rename(content, objects)
        return
    for parent in sorted({f.rel[skip:].rpartition("/")[0] for f in payload} - {""}):
        os.makedirs(f"{objects}/{parent}", exist_ok=True)
    for staged in payload:
        os.rename(f"{root}/{staged.rel}", f"{objects}/{staged.rel[skip:]}")


def _write_tag_files(folder: Path, uuid: str, unit: Unit, algorithms: tuple[str, ...],
                     digests: dict[str, dict[str, str]], sizes: dict[str, int],
                     source_organization: str | None) -> None:
    (folder / "bagit.txt").write_text(BAGIT_TXT, encoding="utf-8")
    for algorithm in algorithms:
        with open(folder / f"manifest-{algorithm}.txt", "w", encoding="utf-8", newline="\n") as out:
            for path in sorted(digests):
                out.write(_manifest_line(digests[path][algorithm], path))
    info = [("BagIt-Profile-Identifier", PROFILE_ID), ("External-Identifier", uuid)]
    if unit.archival_code:
        info.append(("Internal-Sender-Identifier", unit.archival_code))
    if source_organization:
        info.append(("Source-Organization", source_organization))
    info += [("Bagging-Date", datetime.now(timezone.utc).date().isoformat()),
             ("Payload-Oxum", f"{sum(sizes.values())}.{len(sizes)}"),
             ("Bag-Software-Agent", "Dangan"),
             ("External-Description", unit.label.replace("\n", " "))]
    with open(folder / "bag-info.txt", "w", encoding="utf-8", newline="\n") as out:
        for key, value in info:
            out.write(f"{key}: {value}\n")
    tag_files = [n for n in _tag_names(folder) if not n.startswith("tagmanifest-")]
    for algorithm in algorithms:
        with open(folder / f"tagmanifest-{algorithm}.txt", "w", encoding="utf-8", newline="\n") as out:
            for name in sorted(tag_files):
                out.write(_manifest_line(hash_file(folder / name, [algorithm])[1][algorithm], name))


def _tag_names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def file_url(base: str, path: str) -> str:
    """URL of one bag file under a copy's base URL."""
    return f"{base.rstrip('/')}/{quote(path)}"
