"""Appraisal in the portal: the batches (鉴定批次) with their decisions, approval and rejection
by the entitled role, the 销毁清册 for download, and the tombstones of destroyed AIPs (已销毁).

The signed-in account is the actor: the two-person rule, holds and revisions are enforced by
:mod:`storage.appraisal` whoever calls it, so a button shown here can never approve what the
command line would refuse."""

from __future__ import annotations

import io

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, \
    send_file, url_for

from flask_babel import gettext as _, pgettext

from access.portal.i18n import N_, NP_
from access.portal.views import reader, requires, service

bp = Blueprint("appraisal", __name__)

STORAGE_LABELS = (
    NP_("鉴定", "草拟"), NP_("鉴定", "待批准"), NP_("鉴定", "已批准"), NP_("鉴定", "已退回"),
    NP_("鉴定", "执行中"), NP_("鉴定", "已执行"), NP_("鉴定", "销毁"),
    NP_("鉴定", "延长至定期10年"), NP_("鉴定", "延长至定期30年"), NP_("鉴定", "转为永久"),
    NP_("鉴定", "继续审查"), NP_("鉴定", "开放"), NP_("鉴定", "控制"),
)
"""The labels :mod:`storage.appraisal` gives a batch's state and an entry's decision
(``STATUS_LABELS``, ``DECISION_LABELS``): the pages show them through ``pgettext("鉴定", …)``
(a batch is 已批准 "approved", an access request 已批准 "granted")."""
OUTCOME_NAMES = {"pending": N_("待执行"), "done": N_("已执行"), "deferred": N_("暂缓"),
                 "held": N_("冻结")}
"""An entry's execution outcome."""


@bp.get("/appraisal")
@requires("view-appraisal")
def batches_page():
    from storage.appraisal import list_batches, tombstones

    catalogue = service().catalogue
    return render_template("appraisal_list.html", batches=list_batches(catalogue),
                           tombstones=tombstones(catalogue))


@bp.get("/appraisal/<batch_id>")
@requires("view-appraisal")
def batch_page(batch_id: str):
    from policies import NotFoundError
    from storage.appraisal import batch_summary

    try:
        summary = batch_summary(service().catalogue, batch_id)
    except NotFoundError:
        abort(404)
    return render_template("appraisal_batch.html", batch=summary, outcome_names=OUTCOME_NAMES)


@bp.post("/appraisal/<batch_id>/decision")
@requires("approve-appraisal")
def decide_batch(batch_id: str):
    from policies import DanganError
    from storage import appraisal

    catalogue = service().catalogue
    decision = request.form.get("decision")
    try:
        if decision == "approve":
            appraisal.approve(catalogue, batch_id, reader().username)
            flash(pgettext("鉴定", "已批准"), "ok")
        elif decision == "reject":
            appraisal.reject(catalogue, batch_id, reader().username,
                             request.form.get("reason", ""))
            flash(pgettext("鉴定", "已退回"), "ok")
        else:
            abort(400)
    except DanganError as exc:
        flash(_("未能办理：%(why)s", why=exc), "error")
    return redirect(url_for("appraisal.batch_page", batch_id=batch_id))


@bp.get("/appraisal/<batch_id>/<title>.<suffix>")
@requires("view-appraisal")
def batch_document(batch_id: str, title: str, suffix: str):
    from access.appraisal_documents import destruction_list_pdf, destruction_list_xlsx
    from policies import NotFoundError
    from storage.appraisal import batch_summary

    if title not in ("销毁清册", "鉴定报告") or suffix not in ("pdf", "xlsx"):
        abort(404)
    try:
        summary = batch_summary(service().catalogue, batch_id)
    except NotFoundError:
        abort(404)
    render = destruction_list_pdf if suffix == "pdf" else destruction_list_xlsx
    data = render(summary, title)
    service().catalogue.audit(reader().username, "appraisal-document", batch_id,
                              {"document": f"{title}.{suffix}", "via": "portal",
                               "sha256": __import__("hashlib").sha256(data).hexdigest()})
    mime = ("application/pdf" if suffix == "pdf" else
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    current_app.logger.info("appraisal document %s %s", batch_id, title)
    return send_file(io.BytesIO(data), mimetype=mime, as_attachment=suffix == "xlsx",
                     download_name=f"{batch_id}-{title}-r{summary['revision']}.{suffix}")
