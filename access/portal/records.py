"""Record pages and downloads: AIP, item and household views, previews, files (with HTTP
ranges), DIP zips, 查档申请 and open-review decisions. Every answer goes through
:class:`access.services.AccessService`, which asks :mod:`access.rules`."""

from __future__ import annotations

from datetime import date
from urllib.parse import quote

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _

from access.portal.errors import public_message
from access.portal.views import login_required, reader, requires, service
from access.services import Forbidden
from policies import DanganError, NotFoundError, UsageError

bp = Blueprint("records", __name__)


def _or_404(call, *args, **kwargs):
    try:
        return call(*args, **kwargs)
    except NotFoundError:
        abort(404)
    except Forbidden as exc:
        abort(403, str(exc))


def version_arg() -> int | None:
    """``?version=N`` (None without it); anything but a positive number is a bad request."""
    value = request.args.get("version")
    if value in (None, ""):
        return None
    if not value.isdigit() or int(value) < 1:
        abort(400, _("版本号须为正整数。"))
    return int(value)


@bp.get("/aip/<uuid>")
def aip_page(uuid: str):
    view = _or_404(service().aip, reader(), uuid, "page", version_arg())
    history = service().history(reader(), view["uuid"])
    return render_template("aip.html", aip=view, history=history)


@bp.get("/aip/<uuid>/item/<key>")
def item_page(uuid: str, key: str):
    item = _or_404(service().item, reader(), uuid, key)
    return render_template("item.html", item=item)


@bp.get("/household/<uuid>")
def household_page(uuid: str):
    view = _or_404(service().household, reader(), uuid)
    return render_template("household.html", aip=view)


def disposition(name: str, inline: bool) -> str:
    """A Content-Disposition header with an ASCII fallback and the UTF-8 name."""
    kind = "inline" if inline else "attachment"
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"


def send_file_ref(ref, inline: bool) -> Response:
    """Stream a verified file, answering single byte ranges with 206. The stream is opened
    before the answer starts, so a file no copy serves is refused with a page (409), not a
    broken download (:class:`storage.retrieval.NoIntactCopy`)."""
    retriever = service().retriever
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": f'"{ref.sha256}"',
        "Content-Disposition": disposition(ref.path.rsplit("/", 1)[-1], inline),
    }
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
        return Response(
            stream_with_context(retriever.open(ref, start, end)),
            206,
            headers=headers,
            mimetype=mimetype,
        )
    headers["Content-Length"] = str(ref.size)
    return Response(
        stream_with_context(retriever.open(ref)), 200, headers=headers, mimetype=mimetype
    )


@bp.get("/aip/<uuid>/file/<path:path>")
def download_file(uuid: str, path: str):
    inline = request.args.get("inline") == "1"
    ref = _or_404(service().file, reader(), uuid, path, "preview" if inline else "download",
                  version_arg())
    return send_file_ref(ref, inline)


@bp.get("/aip/<uuid>/preview/<path:path>")
def preview_page(uuid: str, path: str):
    view = _or_404(service().aip, reader(), uuid, "preview")
    entry = next((f for f in view["files"] if f["path"] == path and f["preview"]), None)
    if entry is None:
        abort(404)
    return render_template("preview.html", aip=view, file=entry)


@bp.get("/aip/<uuid>.zip")
def download_zip(uuid: str):
    name, body = _or_404(service().dip, reader(), uuid)
    return Response(
        stream_with_context(body),
        200,
        mimetype="application/zip",
        headers={"Content-Disposition": disposition(name, False)},
    )


@bp.post("/aip/<uuid>/request")
@login_required
def request_access(uuid: str):
    item = request.form.get("item") or None
    try:
        service().request_access(reader(), uuid, item, request.form.get("purpose", ""))
    except NotFoundError:
        abort(404)
    except Forbidden:
        abort(403)
    except UsageError as exc:
        flash(str(exc), "error")
        return redirect(url_for("records.aip_page", uuid=uuid))
    flash(_("查档申请已提交，由档案管理员审批。"))
    return redirect(url_for("records.requests_page"))


@bp.get("/requests")
@login_required
def requests_page():
    status = request.args.get("status") or None
    return render_template(
        "requests.html", requests=service().requests(reader(), status), status=status
    )


@bp.post("/requests/<int:request_id>")
@requires("decide-requests")
def decide_request(request_id: int):
    grant = request.form.get("decision") == "grant"
    try:
        days = int(request.form.get("days", "30") or 30)
        service().decide_request(reader(), request_id, grant, days, request.form.get("note", ""))
    except NotFoundError:
        abort(404)
    except ValueError:
        flash(_("天数须为整数。"), "error")
    except DanganError as exc:
        flash(public_message(exc), "error")
    return redirect(url_for("records.requests_page"))


@bp.post("/requests/<int:request_id>/withdraw")
@login_required
def withdraw_request(request_id: int):
    """The requester takes back a pending 查档申请."""
    try:
        service().withdraw_request(reader(), request_id)
    except NotFoundError:
        abort(404)
    except UsageError:
        flash(_("只有待审批的申请可以撤回。"), "error")
    else:
        flash(_("查档申请 #%(n)s 已撤回。", n=request_id))
    return redirect(url_for("records.requests_page"))


@bp.post("/aip/<uuid>/decision")
@requires("record-decisions")
def record_decision(uuid: str):
    form = request.form
    try:
        open_date = date.fromisoformat(form["open_date"]) if form.get("open_date") else None
        service().record_decision(
            reader(),
            uuid,
            form.get("item") or None,
            open_date=open_date,
            control=form.get("control") or None,
            basis=form.get("basis", ""),
        )
        flash(_("决定已记录。"))
    except NotFoundError:
        abort(404)
    except ValueError:
        flash(_("开放日期格式为 YYYY-MM-DD。"), "error")
    except DanganError as exc:
        flash(public_message(exc), "error")
    return redirect(url_for("records.aip_page", uuid=uuid))
