"""Storage's sub-commands: ``dangan show``, ``dangan get`` and ``dangan history``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from policies import NotFoundError, Settings, UsageError

if TYPE_CHECKING:
    from storage.catalogue import Catalogue


@click.command("show")
@click.argument("aip")
@click.option("--version", "version", type=int, help="Show this version (default: the newest).")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_obj
def show_command(settings: Settings, aip: str, version: int | None, as_json: bool) -> int:
    """Show an AIP: metadata, files with digests and formats, events, copies."""
    from storage.catalogue import mask_text, reading
    from storage.copies import human_size

    # plain queries, without the ORM (a third of a second of every call otherwise)
    with reading.reading(settings) as rows:
        details = reading.aip_details(rows, aip)
        _version_view(rows, details, version)
    for copy in details["copies"]:
        copy["files"] = {f["path"]: f"{copy['url'].rstrip('/')}/{f['path']}"
                         for f in details["files"]}
    # a path (or an event naming one) may hold an ID number: shown masked; `dangan get`
    # takes the masked path
    details = mask_text(details)
    if as_json:
        click.echo(json.dumps(details, ensure_ascii=False, indent=2))
        return 0
    echo = click.echo
    echo(f"AIP      {details['uuid']}  [{details['status']}]")
    echo(f"档号     {details['archival_code'] or '-'}")
    echo(f"题名     {details['label']}")
    echo(f"保管期限 {details['retention_period'] or '-'}  到期 {details['expiry_date'] or '-'}"
         f"  开放日期 {details['open_date'] or '-'}")
    echo(f"版本     第 {details['version']} 版（共 {details['versions']} 版）"
         + (f"  {details['version_reason']}" if details['version'] > 1 else ""))
    echo(f"文件     {details['file_count']} 个，存储 {human_size(details['size'])}（含元数据与各版本）")
    for kind, label in (("added", "新增"), ("replaced", "替换"), ("withdrawn", "撤回")):
        for path in details["changes"].get(kind, []):
            echo(f"  本版{label} {path}")
    echo("\nFiles:")
    derived: dict[str, list[dict]] = {}
    for f in details["files"]:
        if f.get("derived_from"):
            derived.setdefault(f["derived_from"], []).append(f)
    # the event that made a derivative names it by its METS file ID, which a version's
    # catalogue key need not be: found by the derivative's key, else by its source's
    made_by = {key: e for e in details["events"] for key in e.get("files", [])[1:]}
    made_from = {e["files"][0]: e for e in details["events"]
                 if len(e.get("files", [])) > 1 and e["outcome"] == "pass"}
    failed = {e["files"][0]: e for e in details["events"]
              if len(e.get("files", [])) == 1 and e["outcome"] != "pass"}
    key_of = {f["path"]: f["key"] for f in details["files"]}
    for f in details["files"]:
        if f.get("derived_from"):
            continue                 # shown under its source
        fmt = f["puid"] or "unidentified"
        echo(f"  {f['path']}\n      {human_size(f['size'])}  sha256:{f['digests']['sha256']}  "
             f"{f['mime'] or ''}  {fmt} {f['format_name'] or ''}")
        for d in derived.get(f["path"], []):
            role = {"preservation": "保存版本", "access": "利用版本"}.get(d["use"], d["use"])
            event = made_by.get(d["key"]) or made_from.get(key_of.get(f["path"], ""))
            made = (f"  {event['type']} {event['outcome']} {event['at']}" if event else "")
            echo(f"      -> {role} {d['path']}\n         {human_size(d['size'])}  "
                 f"sha256:{d['digests']['sha256']}  {d['puid'] or 'unidentified'} "
                 f"{d['format_name'] or ''}{made}")
        event = failed.get(key_of.get(f["path"], ""))
        if event:
            echo(f"      -> 未生成派生文件：{event['type']} {event['outcome']} "
                 f"{event['outcome_detail'][:200]}")
    echo("\nCopies:")
    for c in details["copies"]:
        echo(f"  {c['location']:10} {c['status']:9} verified {c['verified_at']}  {c['url']}")
    echo("\nEvents:")
    for e in details["events"]:
        echo(f"  {e['at']}  {e['type']:28} {e['outcome']:12} {e['detail']}")
    return 0


@click.command("get")
@click.argument("aip")
@click.argument("path", required=False)
@click.option("-o", "--out", "out", required=True, type=click.Path(path_type=Path),
              help="Output file (with PATH) or folder (whole AIP); '-' writes a file to stdout.")
@click.option("--version", "version", type=int,
              help="Retrieve this version (default: the newest); a whole version is a bag.")
@click.pass_obj
def get_command(settings: Settings, aip: str, path: str | None, out: Path,
                version: int | None) -> int:
    """Retrieve an AIP file (or the whole AIP), verifying every digest on the way out."""
    from storage.aip import version_files
    from storage.catalogue import Catalogue
    from storage.copies import Retriever

    catalogue = Catalogue.open(settings)
    uuid = _not_destroyed(catalogue.get_aip(aip)).uuid
    retriever = Retriever(settings, catalogue)
    with catalogue.session() as s:
        stored = {p: row.path for p, row in version_files(s, uuid, version).items()}
    if path is not None:
        ref = retriever.file(uuid, stored[_real_path(list(stored), uuid, path)])
        if str(out) == "-":
            for chunk in retriever.stream(ref):
                sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
            return 0
        if out.is_dir():
            out = out / Path(ref.path).name
        source = retriever.save(ref, out)
        click.echo(f"{out}  ({ref.size} bytes, sha256 verified, from {source})", err=True)
        return 0
    if str(out) == "-":
        raise UsageError("a whole AIP needs a folder for -o")
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"{out}: folder exists and is not empty")
    for logical, key in sorted(stored.items()):
        retriever.save(retriever.file(uuid, key), out / logical)
    click.echo(f"{out}: {len(stored)} files, every sha256 verified", err=True)
    return 0


@click.command("history")
@click.argument("aip")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_obj
def history_command(settings: Settings, aip: str, as_json: bool) -> int:
    """Every version of an AIP: date, agent, reason and what it changed."""
    from storage.aip import versions_of
    from storage.catalogue import Catalogue, mask_text

    catalogue = Catalogue.open(settings)
    uuid = catalogue.get_aip(aip).uuid
    with catalogue.session() as s:
        versions = [v.to_dict() for v in versions_of(s, uuid)]
    versions = mask_text(versions)
    if as_json:
        click.echo(json.dumps({"aip": uuid, "versions": versions}, ensure_ascii=False, indent=2))
        return 0
    click.echo(f"AIP {uuid}: {len(versions)} 个版本")
    for v in versions:
        click.echo(f"\n第 {v['version']} 版  {v['created']}  {v['agent']}  {v['kind']}"
                   + (f"（取代第 {v['supersedes']} 版）" if v["supersedes"] else ""))
        click.echo(f"  原因: {v['reason']}")
        changes = v["changes"]
        for kind, label in (("added", "新增"), ("replaced", "替换"), ("withdrawn", "撤回")):
            for path in changes.get(kind, []):
                click.echo(f"  {label} {path}")
        for change in changes.get("records", []):
            fields = ", ".join(f"{k}: {old!r} → {new!r}"
                               for k, (old, new) in change["fields"].items())
            click.echo(f"  著录 {change['archival_code']}: {fields}")
    return 0


def _version_view(rows: Any, details: dict, version: int | None) -> None:
    """Narrow ``details`` to one version's files (logical paths), with its history;
    ``rows``: the catalogue being read (:class:`storage.catalogue.reading.Rows`)."""
    from storage.aip import versions_of
    from storage.catalogue import reading

    versions = versions_of(rows, details["uuid"])
    number = version or versions[-1].number
    info = next((v for v in versions if v.number == number), None)
    if info is None:
        raise NotFoundError(f"AIP {details['uuid']} has no version {number}")
    files = reading.version_paths(rows, details["uuid"], number)
    by_stored = {f["path"]: f for f in details["files"]}
    details["files"] = [dict(by_stored[stored], path=logical, stored=stored)
                        for logical, stored in sorted(files.items())]
    details.update(version=number, versions=len(versions), version_reason=info.reason,
                   changes=info.changes, history=[v.to_dict() for v in versions])


def _not_destroyed(aip: Any) -> Any:
    """The AIP, unless appraisal destroyed it (its tombstone is what remains: dangan show)."""
    if aip.status in ("DESTROYING", "DESTROYED"):
        raise NotFoundError(f"AIP {aip.uuid} ({aip.archival_code or aip.label}) 已销毁 by "
                            "appraisal: nothing of it can be retrieved; `dangan show` gives its "
                            "destruction record")
    return aip


def _real_path(paths: list[str], uuid: str, path: str) -> str:
    """The bag path a user named: as stored, under ``data/objects/``, or as ``dangan show``
    prints it (ID numbers masked) when that names one file."""
    from storage.catalogue import mask_text

    for wanted in (path, f"data/objects/{path}"):
        if wanted in paths:
            return wanted
        masked = [p for p in paths if mask_text(p) == wanted]
        if len(masked) == 1:
            return masked[0]
    raise NotFoundError(f"AIP {uuid} has no file {mask_text(path)!r}")
