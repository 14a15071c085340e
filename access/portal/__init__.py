"""The portal: a thin Flask app over the access and storage services.

``create_app()`` wires the catalogue, the search engine and the retriever once; each
blueprint (search, AIP pages, downloads) only translates HTTP to service calls and back.
"""

from __future__ import annotations

import secrets
from typing import Any

from flask import Flask

from access.search import EmbeddedSearch
from policies import Settings, load_settings
from storage.catalogue import Catalogue
from storage.retrieval import Retriever


def create_app(settings: Settings | None = None, test_config: dict[str, Any] | None = None) -> Flask:
    """Build the portal for one Dangan home."""
    settings = settings or load_settings()
    app = Flask(__name__)
    app.config.update(SECRET_KEY=settings.get("portal", "secret_key") or secrets.token_hex(32),
                      JSON_AS_ASCII=False, MAX_CONTENT_LENGTH=1 << 20)
    if test_config:
        app.config.update(test_config)
    catalogue = Catalogue.open(settings)
    app.extensions["dangan"] = {
        "settings": settings, "catalogue": catalogue, "search": EmbeddedSearch(catalogue),
        "retriever": Retriever(settings, catalogue),
    }
    from access.portal import aips, search

    app.register_blueprint(search.bp)
    app.register_blueprint(aips.bp)
    app.jinja_env.filters["filesize"] = _filesize
    return app


def _filesize(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"
