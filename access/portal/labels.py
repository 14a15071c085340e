"""QR labels: choosing volumes and boxes, printable sheets (HTML and PDF), boxes, and the
``/q/<token>`` address a scanned code opens (after the viewer's own login)."""

from __future__ import annotations

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from access import labels as lab
from access.portal.views import base_url, login_required, reader, requires, service
from policies import DanganError, NotFoundError
from storage.catalogue import models as m

bp = Blueprint("labels", __name__)
MAX_LABELS = 500


def _volumes() -> list[dict]:
    with service().catalogue.session() as s:
        rows = s.execute(
            select(m.Aip.uuid, m.Aip.archival_code, m.Aip.created_at)
            .join(m.Item, m.Item.aip_uuid == m.Aip.uuid)
            .where(m.Item.level == "户卷", m.Aip.status == "UPLOADED")
            .order_by(m.Aip.archival_code)
            .limit(5000)
        ).all()
    return [{"uuid": u, "archival_code": c} for u, c, _ in rows]


def _selected() -> list[lab.Label]:
    catalogue, actor, url = service().catalogue, reader().actor, base_url()
    aips = request.values.getlist("aip")[:MAX_LABELS]
    boxes = [int(b) for b in request.values.getlist("box")[:MAX_LABELS] if b.isdigit()]
    if not aips and not boxes:
        abort(400, _("请至少选择一个户卷或档案盒。"))
    try:
        return lab.volume_labels(catalogue, aips, url, actor) + lab.box_labels(
            catalogue, boxes, url, actor
        )
    except NotFoundError:
        abort(404)


@bp.get("/labels")
@requires("print-labels")
def labels_page():
    return render_template(
        "labels.html", volumes=_volumes(), boxes=lab.list_boxes(service().catalogue)
    )


@bp.post("/labels/box")
@requires("print-labels")
def make_box():
    try:
        box_id = lab.box_into(
            service().catalogue,
            request.form.getlist("aip"),
            request.form.get("code", ""),
            reader().actor,
        )
    except DanganError as exc:
        abort(400, str(exc))
    return redirect(url_for("labels.sheet", box=box_id))


@bp.route("/labels/sheet", methods=["GET", "POST"])
@requires("print-labels")
def sheet():
    labels = _selected()
    pdf_url = url_for(
        "labels.sheet_pdf", aip=request.values.getlist("aip"), box=request.values.getlist("box")
    )
    return render_template("label_sheet.html", labels=labels, pdf_url=pdf_url)


@bp.get("/labels/sheet.pdf")
@requires("print-labels")
def sheet_pdf():
    data = lab.label_sheet_pdf(_selected())
    return Response(
        data,
        mimetype="application/pdf",
        headers={"Content-Disposition": 'inline; filename="labels.pdf"'},
    )


@bp.get("/q/<token>")
@login_required
def scanned(token: str):
    try:
        kind, target = lab.resolve(service().catalogue, token)
    except NotFoundError:
        abort(404)
    service().catalogue.audit(reader().actor, "label-scan", str(target), {"kind": kind})
    if kind == "box":
        return redirect(url_for("labels.box_page", box_id=target))
    return redirect(url_for("records.household_page", uuid=target))


@bp.get("/box/<int:box_id>")
@login_required
def box_page(box_id: int):
    try:
        code, uuids = lab.box_contents(service().catalogue, box_id)
    except NotFoundError:
        abort(404)
    volumes = []
    for uuid in uuids:
        try:
            volumes.append(service().aip(reader(), uuid, via="box"))
        except NotFoundError:
            continue
    return render_template("box.html", code=code, volumes=volumes, hidden=len(uuids) - len(volumes))
