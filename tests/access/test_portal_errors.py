"""An unexpected failure answers 500 with a short message, JSON for the API and a page for
people, and never shows a traceback."""

from __future__ import annotations

from access.services import AccessService


def test_an_unexpected_error_is_a_clean_500(holding, monkeypatch):
    from access.portal import create_app

    app = create_app(holding.settings, {"TESTING": True, "PROPAGATE_EXCEPTIONS": False,
                                        "WTF_CSRF_ENABLED": False})

    def broken(*_args, **_kwargs):
        raise RuntimeError("secret detail of the failure")

    monkeypatch.setattr(AccessService, "search", broken)
    client = app.test_client()
    answer = client.get("/api/v1/search?q=因病")
    assert answer.status_code == 500
    body = answer.get_json()
    assert (body["error"], body["name"]) == (500, "Internal Server Error")
    assert body["incident"] in body["message"] and "secret detail" not in body["message"]
    page = client.get("/search?q=因病")
    assert page.status_code == 500
    body = page.get_data(as_text=True)
    assert "内部错误" in body and "Internal Server Error" not in body
    assert "secret detail" not in body and "Traceback" not in body


def test_a_catalogue_error_answers_without_its_sql_or_parameters(holding, monkeypatch, caplog):
    """A database error's text names the statement and its parameters (AIP ids, 档号):
    it goes to the log under an incident id, never into the answer."""
    import logging

    from access.portal import create_app
    from policies import CatalogueError

    app = create_app(holding.settings, {"TESTING": True, "WTF_CSRF_ENABLED": False})
    statement = ("(sqlite3.IntegrityError) UNIQUE constraint failed: search_access.doc_id "
                 f"[SQL: INSERT INTO search_access ...] [parameters: ('{holding.restricted}', "
                 "'Q001-JF·02·6301211001')]")

    def failing(*_args, **_kwargs):
        raise CatalogueError(f"catalogue: {statement}")

    monkeypatch.setattr(AccessService, "search", failing)
    client = app.test_client()
    with caplog.at_level(logging.ERROR, logger="dangan.portal"):
        for url in ("/api/v1/search?q=因病", "/search?q=因病"):
            answer = client.get(url)
            text = answer.get_data(as_text=True)
            assert answer.status_code == 503
            assert "SQL" not in text and holding.restricted not in text and "Q001" not in text
            assert "UNIQUE" not in text
    incidents = [r.getMessage().split("incident ")[1].split("]")[0] for r in caplog.records]
    assert len(incidents) == 2 and incidents[-1] in text   # the page names its incident
    assert any(statement in (r.exc_text or "") for r in caplog.records)   # kept for the admin


def test_two_processes_making_the_access_view_at_once_add_each_row_once(home, cli, tmp_path,
                                                                        monkeypatch):
    """Two portal workers' first searches both build the access view. The second must find
    the rows the first made, not insert them again (UNIQUE constraint failed)."""
    import sys
    import threading
    from pathlib import Path

    from sqlalchemy import delete, func, select, text

    from access.models import SearchAccess
    from access.rules import Reader
    from access.search_access import AccessIndex
    from storage.catalogue import models as m

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "ingest"))
    from transfers import small_transfer

    transfer = small_transfer(tmp_path / "t", rows=3)
    assert cli("ingest", transfer, "--json").code == 0
    first, second = AccessService(home), AccessService(home)   # two workers' own connections
    with first.catalogue.session() as s:                       # as before any search
        s.execute(delete(SearchAccess))
        if first.catalogue.is_sqlite:
            s.execute(text("DELETE FROM search_fts_public"))
        documents = s.scalar(select(func.count()).select_from(m.SearchDoc))
    both_decided = threading.Barrier(2, timeout=3)
    original = AccessIndex._add

    def add_when_both_decided(self, s, uuids, only):
        try:   # without a lock both reach this point having found the same rows missing
            both_decided.wait()
        except threading.BrokenBarrierError:
            pass
        return original(self, s, uuids, only)

    monkeypatch.setattr(AccessIndex, "_add", add_when_both_decided)
    errors: list[BaseException] = []

    def search(service):
        try:
            service.search(Reader(), "因病")
        except BaseException as exc:   # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=search, args=(s,)) for s in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    with first.catalogue.session() as s:
        rows = s.scalar(select(func.count()).select_from(SearchAccess))
    assert rows == documents and documents > 0
