"""The ``dangan`` command: gathers the sub-commands of ingest, storage and access.

Exit codes: 0 done, 1 a check failed or a transfer was rejected, 2 bad usage or
configuration, 3 internal error (the traceback goes to ``$DANGAN_HOME/logs/dangan.log``).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import traceback
from pathlib import Path

import click

from policies import DanganError, load_settings


AREAS = ("storage.cli", "access.cli", "ingest.cli")
"""The modules whose ``commands`` lists make up ``dangan``, searched in this order."""


class _LazyGroup(click.Group):
    """Imports an area's commands only when one of them is run: importing all three areas
    costs about a second of CPU, which every short command (an audit of one AIP, a search)
    would otherwise pay. ``--help`` still lists everything."""

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        for module in AREAS:
            if command is not None:
                break
            _load(module)
            command = super().get_command(ctx, name)
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        _register()
        return super().list_commands(ctx)


@click.group(cls=_LazyGroup)
@click.option("--home", envvar="DANGAN_HOME", type=click.Path(file_okay=False, path_type=Path),
              help="The Dangan home folder (default ./dangan-home, or $DANGAN_HOME).")
@click.version_option(package_name="dangan")
@click.pass_context
def cli(ctx: click.Context, home: Path | None) -> None:
    """Dangan (档案): an OAIS digital-preservation repository."""
    ctx.obj = load_settings(home)
    ctx.call_on_close(lambda: _anchor_audit_log(ctx.obj))


def _anchor_audit_log(settings) -> None:
    """Anchor the audit log in storage when the command appended entries to it, so that no
    entry stays covered by the catalogue alone (see ``storage.auditlog``)."""
    catalogue = sys.modules.get("storage.catalogue")
    if catalogue is None or not catalogue.AUDIT_WRITTEN:
        return
    from storage.auditlog import anchor_written

    try:
        result = anchor_written(settings)
    except DanganError as exc:
        click.echo(f"dangan: warning: the audit log was not anchored in storage: {exc}",
                   err=True)
        return
    if result is not None and not result.intact:
        click.echo("dangan: warning: the audit log does not verify, so it was not anchored "
                   "in storage: dangan audit-log verify", err=True)


_LOADED: set[str] = set()


def _load(module: str) -> None:
    """Add the commands of one area (once)."""
    if module in _LOADED:
        return
    _LOADED.add(module)
    for command in importlib.import_module(module).commands:
        if command.name not in cli.commands:
            cli.add_command(command)


def _register() -> None:
    """Add the commands of every area."""
    for module in AREAS:
        _load(module)


def _log_internal_error() -> Path | None:
    try:
        home = load_settings().home
        from storage.permissions import private_dir, private_file

        log = private_file(private_dir(home / "logs") / "dangan.log")
        logging.basicConfig(filename=log, level=logging.ERROR)
        logging.getLogger("dangan").error("internal error\n%s", traceback.format_exc())
        return log
    except Exception:  # noqa: BLE001 - logging must never hide the original error
        return None


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return (and exit with) its exit code.

    Everything the command creates is its owner's alone (umask 077, see
    ``storage.permissions``); the caller's umask is restored afterwards."""
    previous = os.umask(0o077)
    try:
        return _main(argv)
    finally:
        os.umask(previous)


def _main(argv: list[str] | None) -> int:
    try:
        result = cli.main(args=argv, prog_name="dangan", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return 2
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 1
    except DanganError as exc:
        click.echo(f"dangan: error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        log = _log_internal_error()
        click.echo(f"dangan: internal error: {type(exc).__name__}: {exc}"
                   + (f" (traceback in {log})" if log else ""), err=True)
        return 3
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
