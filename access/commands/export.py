"""``dangan export eark``: an AIP, or what one reader may see of it, as an E-ARK package."""

from __future__ import annotations

from pathlib import Path

import click

from policies import Settings


@click.group("export")
def export_group() -> None:
    """Export holdings in exchange formats (E-ARK)."""


@export_group.command("eark")
@click.argument("aip")
@click.option("--version", "version", type=int,
              help="Export this version (default: the newest; an earlier one: AIP only).")
@click.option("-o", "--out", "out", required=True, type=click.Path(path_type=Path),
              help="A folder (the package folder is made inside it) or a file ending in .zip.")
@click.option("--dip", is_flag=True,
              help="A DIP of what a reader may see (restricted files left out, personal "
                   "information de-identified, as the portal shows it).")
@click.option("--reader", "username", default=None,
              help="With --dip: the account whose view is exported (default: an anonymous "
                   "reader).")
@click.pass_obj
def eark_command(settings: Settings, aip: str, version: int | None, out: Path, dip: bool,
                 username: str | None) -> int:
    """Write an E-ARK (CSIP 2.1) AIP or DIP package of an AIP, every file verified."""
    from access import accounts
    from access.eark import export
    from access.rules import Reader
    from access.services import AccessService
    from policies import UsageError

    service = AccessService(settings)
    if username is not None and not dip:
        raise UsageError("--reader goes with --dip")
    if dip:
        reader = (service.reader(accounts.get_user(service.catalogue, username))
                  if username else Reader())
    else:
        reader = Reader("archivist", "dangan-cli")
    written = export(service, reader, aip, out, version=version, dip=dip)
    click.echo(f"{written}: E-ARK {'DIP' if dip else 'AIP'} written, every file verified",
               err=True)
    return 0
