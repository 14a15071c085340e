"""The ``dangan`` command: gathers the sub-commands of ingest, storage and access.

Exit codes: 0 done, 1 a check failed or a transfer was rejected, 2 bad usage or
configuration, 3 internal error (the traceback goes to ``$DANGAN_HOME/logs/dangan.log``).
"""

from __future__ import annotations

import gc
import importlib
import logging
import os
import sys
import traceback
from pathlib import Path

import click

from policies import DanganError, load_settings


AREAS = ("ingest.commands", "storage.commands", "access.commands")
"""The packages whose ``COMMANDS`` tables (name -> ``module:object``) make up ``dangan``."""


def command_table() -> dict[str, str]:
    """Every sub-command name -> ``package.module:object``, from the areas' tables."""
    table: dict[str, str] = {}
    for area in AREAS:
        for name, target in importlib.import_module(area).COMMANDS.items():
            if name in table:
                raise RuntimeError(f"dangan {name}: defined by {table[name]} and {area}")
            table[name] = f"{area}.{target}"
    return table


class _LazyGroup(click.Group):
    """Imports a command's module only when that command is run or described: the command
    tables name every command, so ``dangan --help`` imports the small command modules and
    none of what they run (boto3, Flask, numpy, SQLAlchemy, lxml)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(command_table())

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = command_table().get(name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)


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
    entry stays covered by the catalogue alone (see ``storage.catalogue.auditlog``)."""
    journal = sys.modules.get("storage.catalogue.journal")
    if journal is None or not journal.AUDIT_WRITTEN:
        return
    try:
        if not journal.anchor_due(settings):   # routine entries, anchored a moment ago
            return
    except DanganError:
        pass
    from storage.catalogue import auditlog

    try:
        result = auditlog.anchor_written(settings)
    except DanganError as exc:
        click.echo(f"dangan: warning: the audit log was not anchored in storage: {exc}",
                   err=True)
        return
    if result is not None and not result.intact:
        click.echo("dangan: warning: the audit log does not verify, so it was not anchored "
                   "in storage: dangan audit-log verify", err=True)


def _log_internal_error() -> Path | None:
    try:
        home = load_settings().home
        from storage.locations import private_dir, private_file

        log = private_file(private_dir(home / "logs") / "dangan.log")
        logging.basicConfig(filename=log, level=logging.ERROR)
        logging.getLogger("dangan").error("internal error\n%s", traceback.format_exc())
        return log
    except Exception:  # noqa: BLE001 - logging must never hide the original error
        return None


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return (and exit with) its exit code.

    Everything the command creates is its owner's alone (umask 077, see
    ``storage.locations.permissions``); the caller's umask is restored afterwards."""
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


def run() -> None:
    """The console entry point: :func:`main`, then exit.

    Before exiting, every object is moved out of the garbage collector's reach
    (``gc.freeze``): the interpreter's last full collection would otherwise walk the hundreds
    of thousands of objects SQLAlchemy and the rest made at import, 0.13 s of every command
    (measured: 0.65 s against 0.52 s for importing the audit code and exiting). Objects are
    still released as the interpreter clears its modules, files closed and flushed.
    """
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
