"""The dashboard: holdings by category, year and county for every signed-in reader; ingest
volume, formats and fixity coverage for staff and auditors. Charts are server-side SVG."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, render_template

from access import dashboard as stats
from access import fixity
from access.portal.views import login_required, reader, service

bp = Blueprint("dashboard", __name__)


def figures() -> dict[str, Any]:
    """The dashboard's figures as this reader may see them (the page and the API share it)."""
    catalogue = service().catalogue
    out: dict[str, Any] = {"holdings": stats.holdings(catalogue)}
    if reader().can("view-ingest"):
        out["ingest"] = stats.ingest_volume(catalogue)
        out["formats"] = stats.formats(catalogue)
    if reader().can("view-fixity"):
        out["fixity"] = stats.fixity_coverage(
            catalogue, current_app.extensions["dangan"]["settings"]
        )
    return out


@bp.get("/dashboard")
@login_required
def dashboard_page():
    damage = fixity.alert(service().catalogue) if reader().can("view-fixity") else None
    due = None
    if reader().can("view-appraisal"):
        from datetime import date

        from storage.appraisal import due_counts

        year = date.today().year
        due = {"year": year, **due_counts(service().catalogue, date(year, 12, 31))}
    return render_template("dashboard.html", figures=figures(), damage=damage, due=due)
