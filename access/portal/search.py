"""Search pages: ``/`` and ``/search?q=…&category=02&page=2&sort=date`` (stable URLs)."""

from __future__ import annotations

from flask import Blueprint, render_template, request, url_for

from access.portal.views import reader, service
from access.search import FACET_FIELDS, parse_query

bp = Blueprint("search", __name__)
PER_PAGE = 20
SORTS = ("relevance", "code", "date")
FACET_NAMES = {
    "category": "类别",
    "year": "年度",
    "retention": "保管期限",
    "county": "县",
    "township": "乡镇",
    "village": "行政村",
    "household_type": "贫困户属性",
    "poverty_causes": "致贫原因",
    "formats": "格式",
    "level": "层次",
    "monitored": "防返贫监测",
}


def search_args() -> tuple[str, dict[str, list[str]], int, str, int]:
    """Query text, facet filters, page, sort and page size from the request's arguments."""
    text = request.args.get("q", "").strip()[:500]
    filters = {
        name: [v[:100] for v in request.args.getlist(name)][:20]
        for name in FACET_FIELDS
        if name in request.args
    }
    page = min(max(request.args.get("page", 1, type=int) or 1, 1), 10_000)
    sort = request.args.get("sort", "relevance")
    per_page = min(max(request.args.get("per_page", PER_PAGE, type=int) or PER_PAGE, 1), 100)
    return text, filters, page, sort if sort in SORTS else "relevance", per_page


def search_url(
    text: str,
    filters: dict[str, list[str]],
    sort: str,
    *,
    page: int = 1,
    add: tuple[str, str] | None = None,
    remove: tuple[str, str] | None = None,
    new_sort: str | None = None,
) -> str:
    """A stable URL for this search with one facet value added or removed, another page or
    another order (filters in a fixed order, so equal searches have equal URLs)."""
    merged = {k: list(v) for k, v in filters.items()}
    if add and add[1] not in merged.setdefault(add[0], []):
        merged[add[0]].append(add[1])
    if remove and remove[1] in merged.get(remove[0], []):
        merged[remove[0]].remove(remove[1])
    args: dict[str, object] = {"q": text} if text else {}
    args.update({k: sorted(v) for k, v in sorted(merged.items()) if v})
    if (new_sort or sort) != "relevance":
        args["sort"] = new_sort or sort
    if page > 1:
        args["page"] = page
    return url_for("search.search_page", **args)


@bp.get("/")
@bp.get("/search")
def search_page():
    text, filters, page, sort, per_page = search_args()
    result = service().search(reader(), text, filters, page, per_page, sort)
    query = parse_query(text, filters)
    return render_template(
        "search.html",
        q=text,
        query=query,
        filters=filters,
        page=page,
        sort=sort,
        result=result,
        per_page=per_page,
        facet_names=FACET_NAMES,
        url=lambda **kw: search_url(text, filters, sort, **kw),
    )
