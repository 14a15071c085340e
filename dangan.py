"""The ``dangan`` command: gathers the sub-commands of ingest, storage and access.

Exit codes: 0 done, 1 a check failed or a transfer was rejected, 2 bad usage or
configuration, 3 internal error (the traceback goes to ``$DANGAN_HOME/logs/dangan.log``).
"""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path

import click

from policies import DanganError, load_settings


@click.group()
@click.option("--home", envvar="DANGAN_HOME", type=click.Path(file_okay=False, path_type=Path),
              help="The Dangan home folder (default ./dangan-home, or $DANGAN_HOME).")
@click.version_option(package_name="dangan")
@click.pass_context
def cli(ctx: click.Context, home: Path | None) -> None:
    """Dangan (档案): an OAIS digital-preservation repository."""
    ctx.obj = load_settings(home)


def _register() -> None:
    from access.cli import commands as access_commands
    from ingest.cli import commands as ingest_commands
    from storage.cli import commands as storage_commands

    for command in (*ingest_commands, *storage_commands, *access_commands):
        cli.add_command(command)


def _log_internal_error() -> Path | None:
    try:
        home = load_settings().home
        log = home / "logs" / "dangan.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        logging.basicConfig(filename=log, level=logging.ERROR)
        logging.getLogger("dangan").error("internal error\n%s", traceback.format_exc())
        return log
    except Exception:  # noqa: BLE001 - logging must never hide the original error
        return None


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return (and exit with) its exit code."""
    _register()
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
