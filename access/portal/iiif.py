"""IIIF: the Presentation 3 manifest of a record's images, their Image API 3.0 (level 1)
services, and the viewer on the record page (OpenSeadragon, served from ``static/vendor``;
``make viewer`` brings it from the npm registry). Every answer asks
:class:`access.iiif.Iiif`, which asks the access rules: hidden 404, not open to this reader
403."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, current_app, redirect, request, url_for

from access.iiif import IMAGE_MIMES, IMAGE_PROFILE, PRESENTATION_PROFILE, Iiif, IiifError
from access.portal.views import reader, service
from access.services import Forbidden
from policies import NotFoundError

bp = Blueprint("iiif", __name__)
VIEWER = Path(__file__).with_name("static") / "vendor" / "openseadragon" / "openseadragon.min.js"


def iiif() -> Iiif:
    dangan = current_app.extensions["dangan"]
    if "iiif" not in dangan:
        dangan["iiif"] = Iiif(service())
    return dangan["iiif"]


def _answer(call, *args: Any) -> Any:
    try:
        return call(*args)
    except NotFoundError:
        abort(404)
    except Forbidden as exc:
        abort(403, str(exc))
    except IiifError as exc:
        abort(400, str(exc))


def _json(body: dict[str, Any], mimetype: str) -> Response:
    response = Response(json.dumps(body, ensure_ascii=False, indent=1), mimetype=mimetype)
    response.headers["Access-Control-Allow-Origin"] = "*"   # never with credentials
    return response


def _negotiated(profile: str) -> str:
    """JSON-LD (with its profile) when the client asks for it, else plain JSON (both APIs)."""
    wanted = request.accept_mimetypes.best_match(["application/json", "application/ld+json"])
    return profile if wanted == "application/ld+json" else "application/json"


def _base() -> str:
    return request.host_url.rstrip("/")


@bp.get("/iiif/<uuid>/manifest")
def manifest(uuid: str) -> Response:
    body = _answer(iiif().manifest, reader(), uuid, _base())
    return _json(body, _negotiated(PRESENTATION_PROFILE))


@bp.get("/iiif/<uuid>/image/<image_id>")
def image_base(uuid: str, image_id: str) -> Response:
    return redirect(url_for("iiif.image_info", uuid=uuid, image_id=image_id), 303)


@bp.get("/iiif/<uuid>/image/<image_id>/info.json")
def image_info(uuid: str, image_id: str) -> Response:
    entry = _answer(iiif().entry, reader(), uuid, image_id)
    body = iiif().info(entry, f"{_base()}/iiif/{uuid}/image/{image_id}")
    return _json(body, _negotiated(IMAGE_PROFILE))


@bp.get("/iiif/<uuid>/image/<image_id>/<region>/<size>/<rotation>/<quality>.<fmt>")
def image(uuid: str, image_id: str, region: str, size: str, rotation: str, quality: str,
          fmt: str) -> Response:
    data, mime = _answer(iiif().render, reader(), uuid, image_id, region, size, rotation,
                         quality, fmt)
    response = Response(data, mimetype=mime)
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cache-Control"] = "private, max-age=300"
    return response


@bp.app_context_processor
def _viewer() -> dict[str, Any]:
    def iiif_manifest(aip: dict[str, Any]) -> str | None:
        """The manifest URL of a record page's images, or None when it shows none."""
        if any(f.get("download") and (f.get("mime") or "").split(";")[0] in IMAGE_MIMES
               for f in aip.get("files") or []):
            return url_for("iiif.manifest", uuid=aip["uuid"])
        return None

    return {"iiif_manifest": iiif_manifest, "iiif_viewer_installed": VIEWER.exists()}
