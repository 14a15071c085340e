"""The JSON API ``/api/v1`` (described by ``/api/v1/openapi.json``): the same services the
pages use, the same access rules. Sessions come from the portal login; a POST carries the
CSRF token from ``GET /api/v1/me`` in an ``X-CSRFToken`` header."""

from __future__ import annotations

from datetime import date
from typing import Any

from pathlib import Path

from flask import Blueprint, abort, jsonify, render_template, request, url_for
from flask_wtf.csrf import generate_csrf

from access import labels as lab
from access.portal import dashboard
from access.portal.openapi import openapi_document
from access.portal.records import download_file, download_zip, version_arg
from access.portal.search import search_args
from access.portal.views import login_required, reader, requires, service
from access.rules import CAPABILITIES
from access.services import Forbidden
from policies import DanganError, NotFoundError, UsageError

bp = Blueprint("api", __name__, url_prefix="/api/v1")
docs = Blueprint("apidocs", __name__)
SWAGGER_UI = Path(__file__).with_name("static") / "vendor" / "swagger-ui" / "swagger-ui-bundle.js"
"""Swagger UI, brought from the npm registry by ``make apidocs`` (not committed)."""


def _call(func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except NotFoundError:
        abort(404)
    except Forbidden as exc:
        abort(403, str(exc))
    except UsageError as exc:
        abort(400, str(exc))


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        abort(400, "a JSON object is expected")
    return data


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document())


@docs.get("/api-docs")
def docs_page():
    """The API documentation: Swagger UI over the OpenAPI document when it is installed;
    always the operations listed by the page itself (who may call them, in Chinese)."""
    document = openapi_document()
    operations = [
        {"method": method.upper(), "path": path, "summary": op.get("x-summary-zh") or op["summary"],
         "login": {} not in op.get("security", [{}]),
         "csrf": any("csrf" in s for s in op.get("security", []))}
        for path, ops in document["paths"].items() for method, op in ops.items()
    ]
    return render_template("api_docs.html", operations=operations, info=document["info"],
                           base=document["servers"][0]["url"],
                           swagger_ui=SWAGGER_UI.exists())


@bp.get("/me")
def me():
    current = reader()
    return jsonify(
        {
            "username": current.username,
            "role": current.role,
            "capabilities": sorted(CAPABILITIES[current.role]),
            "grants": [
                {"aip": a, "item": i}
                for a, i in sorted(current.grants, key=lambda g: (g[0], g[1] or ""))
            ],
            "csrf_token": generate_csrf(),
        }
    )


@bp.get("/search")
def search():
    text, filters, page, sort, per_page = search_args()
    result = service().search(reader(), text, filters, page, per_page, sort)
    if result is None:
        return jsonify(
            {
                "query": text,
                "page": page,
                "per_page": per_page,
                "sort": sort,
                "total": 0,
                "hits": [],
                "facets": {},
            }
        )
    hits = [
        {
            **vars(h),   # a flat copy: the hit may be shared with the search cache
            "url": url_for("records.aip_page", uuid=h.aip_uuid)
            + (f"#{h.item_key}" if h.item_key else ""),
        }
        for h in result.hits
    ]
    return jsonify(
        {
            "query": text,
            "page": page,
            "per_page": per_page,
            "sort": sort,
            "total": result.total,
            "hits": hits,
            "facets": {k: [[v, n] for v, n in vs] for k, vs in result.facets.items()},
        }
    )


@bp.get("/aips/<uuid>")
def aip(uuid: str):
    return jsonify(_call(service().aip, reader(), uuid, "api", version_arg()))


@bp.get("/aips/<uuid>/versions")
def versions(uuid: str):
    return jsonify(_call(service().versions, reader(), uuid))


@bp.get("/aips/<uuid>/items/<key>")
def item(uuid: str, key: str):
    return jsonify(_call(service().item, reader(), uuid, key, "api"))


@bp.get("/households/<uuid>")
def household(uuid: str):
    return jsonify(_call(service().household, reader(), uuid))


@bp.get("/aips/<uuid>/files/<path:path>")
def file(uuid: str, path: str):
    return download_file(uuid, path)


@bp.get("/aips/<uuid>/dip")
def dip(uuid: str):
    return download_zip(uuid)


@bp.get("/requests")
@login_required
def requests_list():
    status = request.args.get("status") or None
    return jsonify({"requests": service().requests(reader(), status)})


@bp.post("/requests")
@login_required
def requests_create():
    data = _body()
    row = _call(
        service().request_access,
        reader(),
        str(data.get("aip", "")),
        str(data["item"]) if data.get("item") else None,
        str(data.get("purpose", "")),
    )
    return jsonify({"id": row.id, "status": row.status}), 201


@bp.post("/requests/<int:request_id>/decision")
@requires("decide-requests")
def requests_decide(request_id: int):
    data = _body()
    decision = data.get("decision")
    if decision not in ("grant", "refuse"):
        abort(400, "decision is grant or refuse")
    try:
        days = int(data.get("days", 30))
    except (TypeError, ValueError):
        abort(400, "days is a whole number")
    return jsonify(
        _call(
            service().decide_request,
            reader(),
            request_id,
            decision == "grant",
            days,
            str(data.get("note", "")),
        )
    )


@bp.post("/decisions")
@requires("record-decisions")
def decisions_create():
    data = _body()
    try:
        open_date = date.fromisoformat(str(data["open_date"])) if data.get("open_date") else None
    except ValueError:
        abort(400, "open_date is YYYY-MM-DD")
    result = _call(
        service().record_decision,
        reader(),
        str(data.get("aip", "")),
        str(data["item"]) if data.get("item") else None,
        open_date=open_date,
        control=data.get("control") or None,
        basis=str(data.get("basis", "")),
    )
    return jsonify(result), 201


@bp.get("/labels/<token>")
@login_required
def label(token: str):
    try:
        kind, target = lab.resolve(service().catalogue, token)
    except NotFoundError:
        abort(404)
    url = (
        url_for("labels.box_page", ref=target)
        if kind == "box"
        else url_for("records.household_page", uuid=target)
    )
    service().catalogue.audit(
        reader().actor, "label-scan", str(target), {"kind": kind, "via": "api"}
    )
    return jsonify({"kind": kind, "target": target, "url": url})


@bp.get("/dashboard")
@login_required
def dashboard_figures():
    return jsonify(dashboard.figures())


__all__ = ["bp", "docs", "DanganError"]
