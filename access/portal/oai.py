"""The OAI-PMH 2.0 endpoint ``/oai`` (GET or POST, as the protocol allows): a thin door onto
:class:`access.oai_pmh.OaiProvider`, which answers as an anonymous reader — whoever is signed
in, a harvest never shows more than the public portal does."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from access.oai_pmh import Config, OaiProvider, schema_text
from access.portal.views import service

bp = Blueprint("oai", __name__)


def provider() -> OaiProvider:
    """The provider of this portal (made at the first request)."""
    dangan = current_app.extensions["dangan"]
    if "oai" not in dangan:
        settings = dangan["settings"]
        config = Config.from_settings(settings)
        size = current_app.config.get("OAI_PAGE_SIZE")
        if size:
            config = Config(config.repository_name, config.repository_id, config.admin_email,
                            int(size))
        dangan["oai"] = OaiProvider(service(), config)
    return dangan["oai"]


def base_url() -> str:
    """The base URL harvesters are told: ``[portal] public_url`` + /oai, else this request's."""
    public = str(current_app.extensions["dangan"]["settings"].get("portal", "public_url") or "")
    return (public.rstrip("/") + "/oai") if public else request.base_url


@bp.route("/oai", methods=["GET", "POST"])
def endpoint() -> Response:
    args = request.form if request.method == "POST" else request.args
    body = provider().handle({k: args.getlist(k) for k in args}, base_url())
    return Response(body, mimetype="text/xml", headers={"Cache-Control": "no-store"})


@bp.get("/oai/dangan.xsd")
def dangan_schema() -> Response:
    return Response(schema_text("dangan.xsd"), mimetype="application/xml")
