"""QR labels: choosing volumes and boxes, printable sheets (HTML and PDF), boxes, and the
``/q/<token>`` address a scanned code opens (after the viewer's own login).

Tokens are made (and audited) by POSTs only, which carry the CSRF token; the sheet and its PDF
are GETs that show the tokens that exist. Boxes are addressed by their random reference."""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from access import labels as lab
from access.portal.errors import public_message
from access.portal.views import login_required, reader, requires, service
from policies import DanganError, NotFoundError, UsageError
from storage.catalogue import models as m

bp = Blueprint("labels", __name__)
MAX_LABELS = 500


def _public_url() -> tuple[str | None, str | None]:
    """``(address, None)`` the QR codes carry, or ``(None, why not)``: ``[portal] public_url``
    unset or loopback — a label must never encode 127.0.0.1 (dead on every phone)."""
    configured = current_app.extensions["dangan"]["settings"].get("portal", "public_url")
    try:
        return lab.public_base_url(configured), None
    except UsageError:
        if configured:
            return None, _("门户公开地址 [portal] public_url = %(url)s 是本机回环地址，手机扫码无法打开。"
                           "请管理员在 dangan.toml 中设置读者从外部访问门户的地址后再打印标签。",
                           url=configured)
        return None, _("尚未设置门户公开地址（dangan.toml 中的 [portal] public_url）：二维码须指向"
                       "手机能访问的地址，不能是 127.0.0.1。请管理员设置后再打印标签。")


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


def _choice() -> tuple[list[str], list[str]]:
    """The volumes (AIP uuids) and boxes (references) the request names."""
    aips = [a[:36] for a in request.values.getlist("aip")[:MAX_LABELS]]
    boxes = [b[:32] for b in request.values.getlist("box")[:MAX_LABELS]]
    if not aips and not boxes:
        abort(400, _("请至少选择一个户卷或档案盒。"))
    return aips, boxes


def _sheet(aips: list[str], boxes: list[str], create: bool) -> tuple[list[lab.Label], list[str]]:
    """The labels of the chosen volumes and boxes, and the 档号 / 盒号 of those without one.
    With ``create`` false nothing is written: only live tokens are shown."""
    url, refused = _public_url()
    if url is None:
        abort(409, refused)
    catalogue, actor = service().catalogue, reader().actor
    labels: list[lab.Label] = []
    missing: list[str] = []
    try:
        for uuid in aips:
            found = lab.volume_labels(catalogue, [uuid], url, actor, create)
            labels += found
            if not found:
                missing.append(catalogue.get_aip(uuid).archival_code or uuid[:8])
        for ref in boxes:
            found = lab.box_labels(catalogue, [ref], url, actor, create)
            labels += found
            if not found:
                missing.append(lab.box_contents(catalogue, ref)[0])
    except NotFoundError:
        abort(404)
    return labels, missing


@bp.get("/labels")
@requires("print-labels")
def labels_page():
    return render_template(
        "labels.html", volumes=_volumes(), boxes=lab.list_boxes(service().catalogue),
        no_public_url=_public_url()[1],
    )


@bp.post("/labels/box")
@requires("print-labels")
def make_box():
    catalogue = service().catalogue
    try:
        if not request.form.getlist("aip"):     # a box is packed here: never an empty one
            raise UsageError(_("档案盒 %(code)s 未装入任何户卷：请先勾选要装盒的户卷。",
                               code=request.form.get("code", "").strip()))
        ref = lab.box_into(
            catalogue, request.form.getlist("aip"), request.form.get("code", ""), reader().actor
        )
        lab.token_for(catalogue, "box", lab.box_id(catalogue, ref), reader().actor)
    except DanganError as exc:
        # the labels page again, the choice kept, the reason on top
        return render_template(
            "labels.html", volumes=_volumes(), boxes=lab.list_boxes(catalogue),
            no_public_url=_public_url()[1], error=public_message(exc),
            chosen=set(request.form.getlist("aip")), code=request.form.get("code", ""),
        ), 400
    return redirect(url_for("labels.sheet", box=ref))


@bp.get("/labels/sheet")
@requires("print-labels")
def sheet():
    """The sheet of the chosen labels that exist; the others are listed, to be made by a
    POST (a GET never writes)."""
    aips, boxes = _choice()
    refused = _public_url()[1]
    if refused:
        return render_template("label_sheet.html", labels=[], pdf_url=None, missing=[],
                               aips=aips, boxes=boxes, no_public_url=refused), 409
    labels, missing = _sheet(aips, boxes, create=False)
    pdf_url = url_for("labels.sheet_pdf", aip=aips, box=boxes) if labels and not missing else None
    return render_template(
        "label_sheet.html", labels=labels, pdf_url=pdf_url, missing=missing, aips=aips,
        boxes=boxes,
    )


@bp.post("/labels/sheet")
@requires("print-labels")
def make_sheet():
    """Make the tokens of the chosen volumes and boxes (audited), then show their sheet."""
    aips, boxes = _choice()
    _sheet(aips, boxes, create=True)
    return redirect(url_for("labels.sheet", aip=aips, box=boxes), 303)


@bp.get("/labels/sheet.pdf")
@requires("print-labels")
def sheet_pdf():
    labels, missing = _sheet(*_choice(), create=False)
    if missing:
        abort(409, _("所选户卷或档案盒中有尚未生成标签的，请先在标签页生成。"))
    try:
        pdf = lab.label_sheet_pdf(labels)
    except lab.LabelFontError as exc:
        abort(503, _("无法生成 PDF 标签页：没有可用的中文字体（%(why)s）。可改用浏览器打印本页。",
                     why=str(exc)))
    return Response(
        pdf,
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
        return redirect(url_for("labels.box_page", ref=target))
    return redirect(url_for("records.household_page", uuid=target))


@bp.get("/box/<ref>")
@login_required
def box_page(ref: str):
    try:
        code, uuids = lab.box_contents(service().catalogue, ref)
    except NotFoundError:
        abort(404)
    volumes = []
    for uuid in uuids:
        try:
            volumes.append(service().aip(reader(), uuid, via="box"))
        except NotFoundError:
            continue
    return render_template("box.html", code=code, volumes=volumes, hidden=len(uuids) - len(volumes))
