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
    assert answer.get_json() == {"error": 500, "name": "Internal Server Error",
                                 "message": "internal error (logged)"}
    page = client.get("/search?q=因病")
    assert page.status_code == 500
    body = page.get_data(as_text=True)
    assert "Internal Server Error" in body
    assert "secret detail" not in body and "Traceback" not in body
