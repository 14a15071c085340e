"""The fixity page for auditors (and staff): the last full check of every stored copy, the
damaged files by path and kind of damage, the repair state, links to the AIPs; and the HTML
fixity report to download."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, render_template

from access import fixity
from access.portal.views import requires, service

bp = Blueprint("fixity", __name__)


@bp.get("/fixity")
@requires("view-fixity")
def fixity_page():
    view = fixity.overview(service().catalogue, current_app.extensions["dangan"]["settings"])
    return render_template("fixity.html", **view)


@bp.get("/fixity/report.html")
@requires("view-fixity")
def fixity_report():
    html = fixity.report_html(service().catalogue, current_app.extensions["dangan"]["settings"])
    return Response(html, mimetype="text/html", headers={
        "Content-Disposition": 'attachment; filename="fixity-report.html"'})
