"""AIP pages and downloads: ``/aip/<uuid>``, ``/aip/<uuid>/file/<path>``, ``/aip/<uuid>.zip``.

Files stream from storage with their digest verified (whole-file reads); HTTP range requests
are answered with 206 for previews and resumed downloads. The whole-AIP zip is streamed as it
is made.
"""

from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, Response, abort, jsonify, render_template, request, stream_with_context

from access.dip import stream_zip
from access.portal.services import catalogue, retriever
from policies import NotFoundError, UsageError

bp = Blueprint("aips", __name__)


def _details(uuid: str) -> dict:
    try:
        return catalogue().aip_details(uuid)
    except NotFoundError:
        abort(404, f"no AIP {uuid}")


@bp.get("/aip/<uuid>")
def aip_page(uuid: str):
    return render_template("aip.html", aip=_details(uuid))


@bp.get("/api/v1/aips/<uuid>")
def aip_api(uuid: str):
    return jsonify(_details(uuid))


def _disposition(name: str, inline: bool) -> str:
    kind = "inline" if inline else "attachment"
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"


@bp.get("/aip/<uuid>/file/<path:path>")
def download_file(uuid: str, path: str):
    try:
        ref = retriever().file(uuid, path)
    except (NotFoundError, UsageError):
        abort(404, f"AIP {uuid} has no file {path}")
    headers = {"Accept-Ranges": "bytes", "ETag": f'"{ref.sha256}"',
               "Content-Disposition": _disposition(path.rsplit("/", 1)[-1],
                                                   request.args.get("inline") == "1")}
    mimetype = ref.mime or "application/octet-stream"
    byte_range = request.range
    if byte_range is not None and ref.size > 0:
        if byte_range.units != "bytes" or len(byte_range.ranges) != 1:
            return Response(status=416, headers={"Content-Range": f"bytes */{ref.size}"})
        bounds = byte_range.range_for_length(ref.size)
        if bounds is None:
            return Response(status=416, headers={"Content-Range": f"bytes */{ref.size}"})
        start, end = bounds
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{ref.size}"
        headers["Content-Length"] = str(end - start)
        body = retriever().stream(ref, start, end)
        return Response(stream_with_context(body), 206, headers=headers, mimetype=mimetype)
    headers["Content-Length"] = str(ref.size)
    return Response(stream_with_context(retriever().stream(ref)), 200, headers=headers,
                    mimetype=mimetype)


@bp.get("/aip/<uuid>.zip")
def download_zip(uuid: str):
    details = _details(uuid)
    refs = [retriever().file(details["uuid"], f["path"]) for f in details["files"]]
    body = stream_zip(retriever(), refs, details["uuid"])
    return Response(stream_with_context(body), 200, mimetype="application/zip",
                    headers={"Content-Disposition": _disposition(f"{details['uuid']}.zip", False)})
