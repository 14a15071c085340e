"""The portal: a thin Flask app over the access services (:mod:`access.services`).

``create_app()`` wires the services once; each blueprint only translates HTTP to service calls
and back: ``auth`` (login, logout, language, accounts), ``search``, ``records`` (AIP, item and
household pages, previews, downloads, DIPs, 查档申请), ``labels`` (QR label sheets),
``dashboard``, ``api`` (the JSON API ``/api/v1`` and its OpenAPI document), ``oai``
(OAI-PMH, :mod:`access.oai_pmh`) and ``iiif`` (manifests, image services, the viewer).
Chinese first, English at ``?lang=en``; every form carries a CSRF token; pages work without
JavaScript.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, g, request, session
from flask_babel import Babel
from flask_wtf.csrf import CSRFProtect

from access.services import AccessService
from policies import Settings, load_settings

LOCALES = ("zh", "en")
csrf = CSRFProtect()


def _secret_key(settings: Settings) -> str:
    """The configured key, else one kept in the home (so sessions survive restarts)."""
    configured = settings.get("portal", "secret_key")
    if configured:
        return str(configured)
    path = settings.home / "secrets" / "portal-secret-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip()


def _locale() -> str:
    chosen = request.args.get("lang") or request.cookies.get("lang")
    if chosen in LOCALES:
        return chosen
    return g.get("default_locale", "zh")


def create_app(
    settings: Settings | None = None, test_config: dict[str, Any] | None = None
) -> Flask:
    """Build the portal for one Dangan home.

    Arguments:
        settings: the home's settings (loaded from the environment when omitted).
        test_config: Flask configuration overrides (tests).
    """
    settings = settings or load_settings()
    from access.portal import logs

    logs.install_filters()
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=_secret_key(settings),
        JSON_AS_ASCII=False,
        MAX_CONTENT_LENGTH=1 << 20,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=bool(settings.get("portal", "secure_cookies")),
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.int("portal", "session_hours")),
        BABEL_DEFAULT_LOCALE=str(settings.get("portal", "default_locale") or "zh"),
        BABEL_TRANSLATION_DIRECTORIES=str(Path(__file__).with_name("translations")),
        WTF_CSRF_TIME_LIMIT=None,
        WTF_CSRF_SSL_STRICT=False,
    )
    if test_config:
        app.config.update(test_config)
    service = AccessService(settings)
    app.extensions["dangan"] = {
        "settings": settings,
        "service": service,
        "catalogue": service.catalogue,
        "search": service.engine,
        "retriever": service.retriever,
    }
    Babel(app, locale_selector=_locale)
    csrf.init_app(app)
    from access.portal import (api, appraisal, auth, dashboard, errors, iiif, labels, oai,
                               records, search, views)

    views.init_app(app)
    for blueprint in (auth.bp, search.bp, records.bp, labels.bp, dashboard.bp, api.bp,
                      api.docs, appraisal.bp, oai.bp, iiif.bp):
        app.register_blueprint(blueprint)
    csrf.exempt(oai.bp)   # OAI-PMH harvesters may POST; the endpoint changes nothing
    from access.portal import display, fixity

    display.init_app(app)
    app.register_blueprint(fixity.bp)
    _register_optional(app)
    errors.init_app(app)
    if app.config.get("TESTING"):
        app.test_login = auth.test_login  # type: ignore[attr-defined]

    @app.before_request
    def _session_defaults() -> None:
        session.permanent = True
        g.default_locale = app.config["BABEL_DEFAULT_LOCALE"]

    return app


def _register_optional(app: Flask) -> None:
    """Blueprints of other areas served by the same portal, when installed: the
    Storage-Service-compatible API (its own API keys; no session login, no CSRF)."""
    try:
        from access import ssapi  # type: ignore[attr-defined]
    except ImportError:
        return
    blueprint = getattr(ssapi, "bp", None)
    if blueprint is not None and blueprint.name not in app.blueprints:
        csrf.exempt(blueprint)
        app.register_blueprint(blueprint)
