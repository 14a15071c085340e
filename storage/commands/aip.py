"""Storage's sub-commands: ``dangan show`` and ``dangan get``."""

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
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_obj
def show_command(settings: Settings, aip: str, as_json: bool) -> int:
    """Show an AIP: metadata, files with digests and formats, events, copies."""
    from storage.catalogue import Catalogue, mask_text
    from storage.copies import human_size

    catalogue = Catalogue.open(settings)
    details = catalogue.aip_details(aip)
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
    echo(f"文件     {details['file_count']} 个，{human_size(details['size'])}（含元数据）")
    echo("\nFiles:")
    for f in details["files"]:
        fmt = f["puid"] or "unidentified"
        echo(f"  {f['path']}\n      {human_size(f['size'])}  sha256:{f['digests']['sha256']}  "
             f"{f['mime'] or ''}  {fmt} {f['format_name'] or ''}")
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
@click.pass_obj
def get_command(settings: Settings, aip: str, path: str | None, out: Path) -> int:
    """Retrieve an AIP file (or the whole AIP), verifying every digest on the way out."""
    from storage.catalogue import Catalogue
    from storage.copies import Retriever

    catalogue = Catalogue.open(settings)
    uuid = _not_destroyed(catalogue.get_aip(aip)).uuid
    retriever = Retriever(settings, catalogue)
    if path is not None:
        ref = retriever.file(uuid, _real_path(catalogue, uuid, path))
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
    files = catalogue.files_of(uuid)
    for row in files:
        retriever.save(retriever.file(uuid, row.path), out / row.path)
    click.echo(f"{out}: {len(files)} files, every sha256 verified", err=True)
    return 0



def _not_destroyed(aip: Any) -> Any:
    """The AIP, unless appraisal destroyed it (its tombstone is what remains: dangan show)."""
    if aip.status in ("DESTROYING", "DESTROYED"):
        raise NotFoundError(f"AIP {aip.uuid} ({aip.archival_code or aip.label}) 已销毁 by "
                            "appraisal: nothing of it can be retrieved; `dangan show` gives its "
                            "destruction record")
    return aip


def _real_path(catalogue: Catalogue, uuid: str, path: str) -> str:
    """The bag path a user named: as stored, under ``data/objects/``, or as ``dangan show``
    prints it (ID numbers masked) when that names one file."""
    from storage.catalogue import mask_text

    paths = [row.path for row in catalogue.files_of(uuid)]
    for wanted in (path, f"data/objects/{path}"):
        if wanted in paths:
            return wanted
        masked = [p for p in paths if mask_text(p) == wanted]
        if len(masked) == 1:
            return masked[0]
    raise NotFoundError(f"AIP {uuid} has no file {mask_text(path)!r}")
