"""Search on the command line: ``dangan search``, ``dangan index status|drain|retry`` and
``dangan reindex``."""

from __future__ import annotations

import json
import os
import re

import click

from access.rules import ROLES

from policies import Settings


def _echo_json(data: object) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


@click.group("index")
def index_group() -> None:
    """The search index: its lag, failures and the indexing outbox."""


@index_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_obj
def index_status_command(settings: Settings, as_json: bool) -> int:
    """Show the engine, its index, the indexing lag and the failures.

    Exits 1 when the engine cannot be reached or indexing has failed entries (attempts
    exhausted) waiting for ``dangan index retry``.
    """
    from access.search.base import SearchError
    from access.search.base import open_engine
    from storage.catalogue import Catalogue
    from storage.index import outbox

    catalogue = Catalogue.open(settings)
    engine = open_engine(settings, catalogue)
    with catalogue.session() as s:
        lag = outbox.outbox_status(s)
    try:
        info = engine.status() if engine.external else {"engine": "embedded"}
    except SearchError as exc:
        info = {"engine": settings.get("search", "engine"), "error": str(exc)}
    report = {"engine": info, "outbox": lag.to_dict()}
    code = 1 if lag.failed or "error" in info else 0
    if as_json:
        _echo_json(report)
        return code
    if not engine.external:
        click.echo("engine   embedded (indexed in the catalogue transaction: no lag)")
    elif "error" in info:
        click.echo(f"engine   UNREACHABLE: {info['error']}")
    else:
        click.echo(f"engine   {info['server']['distribution']} {info['server']['version']} "
                   f"at {info['url']}")
        click.echo(f"alias    {info['alias']} -> {info['index'] or '(none yet)'}")
        click.echo(f"docs     {info['documents']} indexed / {info['catalogue_documents']} in "
                   f"the catalogue")
        words = ", ".join(info["analysis"]["word_fields"]) or "none (no smartcn/ik plugin)"
        click.echo(f"analysis cjk bigrams; word sub-fields: {words}")
        if info["reindex"]:
            state = info["reindex"]
            click.echo(f"reindex  into {state['target']} since {state['started_at']}: "
                       f"{state.get('done', 0)} documents so far (resume: dangan reindex)")
    click.echo(f"outbox   {lag.pending} pending ({lag.retrying} retrying), {lag.failed} failed, "
               f"{lag.done} done; lag {lag.lag_seconds:.0f} s")
    for failure in lag.failures:
        click.echo(f"  {failure['status']:7} {failure['op']} {failure['aip']}  "
                   f"attempts {failure['attempts']}  {failure['last_attempt']}  "
                   f"{failure['error']}")
    return code


@index_group.command("drain")
@click.option("--once", is_flag=True, help="One batch only.")
@click.option("--limit", default=500, show_default=True, help="Entries per batch.")
@click.option("--max-seconds", type=float, help="Stop after this long.")
@click.pass_obj
def index_drain_command(settings: Settings, once: bool, limit: int,
                        max_seconds: float | None) -> int:
    """Send what the outbox owes to the search engine (workers do this when idle)."""
    from access.search.indexer import drain

    result = drain(settings, limit=limit, once=once, max_seconds=max_seconds)
    click.echo(f"{result.indexed} AIPs indexed, {result.failed} failed "
               "(see dangan index status)" if result.failed else
               f"{result.indexed} AIPs indexed")
    return 1 if result.failed else 0


@index_group.command("retry")
@click.pass_obj
def index_retry_command(settings: Settings) -> int:
    """Queue the outbox entries whose attempts are exhausted again."""
    from storage.catalogue import Catalogue
    from storage.index import outbox

    with Catalogue.open(settings).session() as s:
        count = outbox.retry_failed(s)
    click.echo(f"{count} entries queued again")
    return 0


@click.command("reindex")
@click.option("--fresh", is_flag=True, help="Drop an unfinished reindex and start again.")
@click.option("--keep-old", is_flag=True, help="Keep the previous index version.")
@click.option("--batch", type=int, help="Documents per bulk request.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_obj
def reindex_command(settings: Settings, fresh: bool, keep_old: bool, batch: int | None,
                    as_json: bool) -> int:
    """Rebuild the search index from the catalogue without taking search down.

    Elasticsearch: a new index version is built while the current one serves, then the alias
    is swapped; an interrupted reindex resumes where it stopped. Embedded: the token tables are
    rewritten in one transaction (readers see the old ones until it commits).
    """
    from access.search.base import open_engine
    from storage.catalogue import Catalogue
    from storage.index import rebuild_tokens

    catalogue = Catalogue.open(settings)
    engine = open_engine(settings, catalogue)
    if not engine.external:
        with catalogue.session() as s:
            summary = {"engine": "embedded", "documents": rebuild_tokens(s)}
    else:
        def progress(done: int, total: int) -> None:
            if not as_json:
                click.echo(f"\r{done}/{total} documents", nl=False, err=True)

        summary = engine.reindex(fresh=fresh, keep_old=keep_old,  # type: ignore[attr-defined]
                                 batch=batch, progress=progress)
        if not as_json:
            click.echo("", err=True)
    if as_json:
        _echo_json(summary)
    elif summary.get("engine") == "embedded":
        click.echo(f"embedded index rebuilt: {summary['documents']} documents")
    else:
        resumed = (f" (resumed after document {summary['resumed_from']})"
                   if summary["resumed_from"] else "")
        click.echo(f"{summary['target']}: {summary['documents']} documents{resumed}; alias "
                   f"now points at it (previous: {summary['previous'] or 'none'})")
    return 0


@click.command("search")
@click.argument("query", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print hits as JSON.")
@click.option("--page", default=1, show_default=True)
@click.option("--per-page", default=20, show_default=True)
@click.option(
    "--as",
    "as_role",
    type=click.Choice(ROLES),
    default="archivist",
    show_default=True,
    help="Search as this role sees the holdings (e.g. researcher).",
)
@click.pass_obj
def search_command(
    settings: Settings,
    query: tuple[str, ...],
    as_json: bool,
    page: int,
    per_page: int,
    as_role: str,
) -> int:
    """Search the holdings: words, "phrases", field:value (year:2016, category:02).

    A full ID number (18 digits) searched by staff finds the records holding it by its
    keyed hash, as the portal does (the number is stored only encrypted); every such look-up
    is recorded in the audit log with the number masked.
    """
    from access import plain
    from access.rules import Reader
    from metadata_profiles import mask_id_number, normalise_id_number

    reader = Reader(
        as_role, f"cli-{os.environ.get('USER', 'operator')}" if as_role != "public" else None
    )
    text = " ".join(query)
    by_id = None
    if normalise_id_number(text.strip()) is not None:
        if reader.staff:
            from access.services import AccessService

            by_id = AccessService(settings, columnar=False).find_by_id_number(reader, text)
        else:
            click.echo("an ID number is looked up by staff only (--as archivist, auditor or "
                       "admin); searching it as words finds nothing", err=True)
    # one question: plain SQL when the catalogue allows (no ORM), else the access services
    result = plain.search(settings, reader, text, page=page, per_page=per_page)
    if result is plain.NOT_HERE:
        from access.services import AccessService

        service = AccessService(settings, columnar=False)  # SQL, no columns
        result = service.search(reader, text, page=page, per_page=per_page)
    hits = result.hits if result else []
    if as_json:
        click.echo(
            json.dumps(
                {
                    "total": result.total if result else 0,
                    "hits": [
                        {
                            "aip": h.aip_uuid,
                            "item": h.item_key,
                            "archival_code": h.archival_code,
                            "title": h.title,
                            "snippet": h.snippet,
                            "view": h.view,
                            "text_pending": h.text_pending,
                        }
                        for h in hits
                    ],
                    "facets": result.facets if result else {},
                    **({"id_number_matches": by_id} if by_id is not None else {}),
                },
                ensure_ascii=False,
                indent=2,
            )
        )
        return 0
    if by_id is not None:
        click.echo(f"ID number {mask_id_number(text)}: {len(by_id)} record(s) hold it "
                   "(look-up audited)")
        for match in by_id:
            click.echo(f"{match['aip']}  {match['archival_code'] or '-'}  {match['level'] or ''}"
                       f"  ({match['item'] or 'AIP'}, field {match['field']})")
    click.echo(f"{result.total if result else 0} hits")
    for hit in hits:
        snippet = re.sub(
            r"</?mark>", lambda m: "【" if m.group() == "<mark>" else "】", hit.snippet
        )
        pending = "  [全文待识别 text pending]" if hit.text_pending else ""
        click.echo(f"{hit.aip_uuid}  {hit.archival_code or '-'}  {hit.title}{pending}\n"
                   f"    {snippet}")
    return 0
