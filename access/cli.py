"""Access's sub-commands: ``dangan search`` and ``dangan serve``."""

from __future__ import annotations

import json
import re

import click

from access.search import EmbeddedSearch, parse_query
from policies import Settings
from storage.catalogue import Catalogue


@click.command("search")
@click.argument("query", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print hits as JSON.")
@click.option("--page", default=1, show_default=True)
@click.option("--per-page", default=20, show_default=True)
@click.pass_obj
def search_command(settings: Settings, query: tuple[str, ...], as_json: bool, page: int,
                   per_page: int) -> int:
    """Search the holdings: words, "phrases", field:value (year:2016, category:02)."""
    engine = EmbeddedSearch(Catalogue.open(settings))
    result = engine.search(parse_query(" ".join(query)), page=page, per_page=per_page)
    if as_json:
        click.echo(json.dumps({"total": result.total, "hits": [
            {"aip": h.aip_uuid, "item": h.item_key, "archival_code": h.archival_code,
             "title": h.title, "snippet": h.snippet} for h in result.hits],
            "facets": result.facets}, ensure_ascii=False, indent=2))
        return 0
    click.echo(f"{result.total} hits")
    for hit in result.hits:
        snippet = re.sub(r"</?mark>", lambda m: "【" if m.group() == "<mark>" else "】", hit.snippet)
        click.echo(f"{hit.aip_uuid}  {hit.archival_code or '-'}  {hit.title}\n    {snippet}")
    return 0


@click.command("serve")
@click.option("--host", help="Address to bind (default 127.0.0.1 from dangan.toml).")
@click.option("--port", type=int, help="Port (default 5000).")
@click.pass_obj
def serve_command(settings: Settings, host: str | None, port: int | None) -> int:
    """Serve the portal (binds 127.0.0.1 unless told otherwise)."""
    from werkzeug.serving import run_simple

    from access.portal import create_app

    host = host or settings.get("portal", "host")
    port = port or settings.int("portal", "port")
    app = create_app(settings)
    click.echo(f"Dangan portal: http://{host}:{port}/   (try: http://{host}:{port}/search?q=因病)")
    run_simple(host, port, app, threaded=True, use_reloader=False)
    return 0


commands = [search_command, serve_command]
