"""Search pages: ``/`` and ``/search?q=…`` (HTML), ``/api/v1/search`` (JSON)."""

from __future__ import annotations

from dataclasses import asdict

from flask import Blueprint, jsonify, render_template, request

from access.portal.services import search_engine
from access.search import FACET_FIELDS, parse_query

bp = Blueprint("search", __name__)
PER_PAGE = 20
FACET_NAMES = {"category": "类别", "year": "年度", "retention": "保管期限", "county": "县",
               "township": "乡镇", "village": "行政村", "household_type": "贫困户属性",
               "poverty_causes": "致贫原因", "formats": "格式", "level": "层次"}


def _run():
    text = request.args.get("q", "").strip()
    filters = {name: request.args.getlist(name) for name in FACET_FIELDS if name in request.args}
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    sort = request.args.get("sort", "relevance")
    query = parse_query(text, filters)
    result = search_engine().search(query, page=page, per_page=PER_PAGE, sort=sort) \
        if not query.empty else None
    return text, query, page, sort, result


@bp.get("/")
@bp.get("/search")
def search_page():
    text, query, page, sort, result = _run()
    return render_template("search.html", q=text, query=query, page=page, sort=sort,
                           result=result, per_page=PER_PAGE, facet_names=FACET_NAMES)


@bp.get("/api/v1/search")
def search_api():
    text, query, page, sort, result = _run()
    if result is None:
        return jsonify({"query": text, "total": 0, "hits": [], "facets": {}})
    return jsonify({"query": text, "page": page, "total": result.total,
                    "hits": [asdict(h) for h in result.hits],
                    "facets": {k: [[v, n] for v, n in vs] for k, vs in result.facets.items()}})
