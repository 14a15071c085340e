"""Search pages: ``/`` and ``/search?q=…&category=02&page=2&sort=date`` (stable URLs)."""

from __future__ import annotations

import dataclasses

from flask import Blueprint, render_template, request, url_for
from flask_babel import gettext as _

from access.portal.i18n import N_

from access.portal.display import field_label
from access.portal.views import reader, service
from access.results import hit_views
from access.search import FACET_FIELDS, parse_query

bp = Blueprint("search", __name__)
PER_PAGE = 20
SORTS = ("relevance", "code", "date")
FACET_NAMES = {
    "category": N_("类别"),
    "year": N_("年度"),
    "retention": N_("保管期限"),
    "county": N_("县"),
    "township": N_("乡镇"),
    "village": N_("行政村"),
    "household_type": N_("贫困户属性"),
    "poverty_causes": N_("致贫原因"),
    "formats": N_("格式"),
    "level": N_("层次"),
    "monitored": N_("防返贫监测"),
}


def search_args() -> tuple[str, dict[str, list[str]], int, str, int]:
    """Query text, facet filters, page, sort and page size from the request's arguments."""
    text = request.args.get("q", "").strip()[:500]
    filters = {
        name: [v[:100] for v in request.args.getlist(name)][:20]
        for name in FACET_FIELDS
        if name in request.args
    }
    page = _page_number(request.args.get("page"))
    sort = request.args.get("sort", "relevance")
    per_page = min(max(request.args.get("per_page", PER_PAGE, type=int) or PER_PAGE, 1), 100)
    return text, filters, page, sort if sort in SORTS else "relevance", per_page


def _page_number(raw: str | None) -> int:
    """The page asked for: 1 when none; 0 when it is not a number (the page says so)."""
    if raw is None or raw == "":
        return 1
    try:
        return min(max(int(raw), 1), 10_000)
    except ValueError:
        return 0


def _single_characters(text: str) -> list[str]:
    """Query words of one Chinese character, which the index (two-character grams) cannot
    find (surnames 王, 张; 村)."""
    words = [w.strip('"“”-') for w in text.split()]
    return [w for w in words if len(w) == 1 and "\u4e00" <= w <= "\u9fff"]


def _code_first(text: str, filters, sort: str, result, per_page: int) -> None:
    """Put the record whose 档号 is exactly the query first on the first page."""
    code = text.strip().strip('"')
    if not code or " " in code or "-" not in code or not any(c.isdigit() for c in code):
        return
    hits = result.hits
    exact = next((h for h in hits if h.archival_code == code), None)
    if exact is None:
        wider = service().search(reader(), text, filters, 1, 100, sort)
        exact = next((h for h in (wider.hits if wider else []) if h.archival_code == code), None)
        if exact is None:
            return
    else:
        hits.remove(exact)
    hits.insert(0, exact)
    del hits[per_page:]


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
    notices = []
    if page == 0:
        notices.append(_("页码须为数字，已显示第 1 页。"))
        page = 1
    result = service().search(reader(), text, filters, page, per_page, sort)
    pages = max(1, -(-result.total // per_page)) if result is not None else 1
    if result is not None and page > pages:
        notices.append(_("共 %(n)s 页，没有第 %(p)s 页，已显示最后一页。", n=pages, p=page))
        page = pages
        result = service().search(reader(), text, filters, page, per_page, sort)
    if result is not None and page == 1:
        result = dataclasses.replace(result, hits=list(result.hits))   # the cached stays
        _code_first(text, filters, sort, result, per_page)
    single = _single_characters(text)
    if single:
        notices.append(_("单个汉字（%(w)s）无法检索：请输入至少两个字，如姓名全称或“王家庄”。",
                         w="、".join(single)))
    by_id = service().find_by_id_number(reader(), text) if text else None
    query = parse_query(text, filters)
    restricted = (service().restricted_matches(reader(), text, filters, result.total)
                  if result is not None else None)
    views = hit_views(service().catalogue, result, query.terms, field_label)
    return render_template(
        "search.html",
        q=text,
        query=query,
        filters=filters,
        page=page,
        pages=pages,
        sort=sort,
        result=result,
        views=views,
        notices=notices,
        restricted=restricted,
        by_id=by_id,
        per_page=per_page,
        facet_names=FACET_NAMES,
        url=lambda **kw: search_url(text, filters, sort, **kw),
    )
