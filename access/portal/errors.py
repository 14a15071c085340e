"""Errors at the edge: JSON for the API, a page for people; never a traceback."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from policies import DanganError

log = logging.getLogger("dangan.portal")


def _answer(code: int, name: str, message: str):
    if request.path.startswith("/api/"):
        return jsonify({"error": code, "name": name, "message": message}), code
    return render_template("error.html", code=code, name=name, message=message), code


def init_app(app: Flask) -> None:
    """Install the error handlers."""

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError):
        return _answer(400, "CSRF", exc.description)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        response = _answer(exc.code or 500, exc.name, exc.description or "")
        if exc.code == 401 and request.path.startswith("/api/"):
            response[0].headers["WWW-Authenticate"] = 'Session realm="dangan"'
        return response

    @app.errorhandler(DanganError)
    def _dangan(exc: DanganError):
        log.exception("request failed")
        return _answer(503 if exc.exit_code == 3 else 500, type(exc).__name__, str(exc))

    @app.errorhandler(Exception)
    def _internal(exc: Exception):
        if app.config.get("TESTING") and app.config.get("PROPAGATE_EXCEPTIONS", True):
            raise exc
        log.exception("internal error")
        return _answer(500, InternalServerError().name, "internal error (logged)")
