"""Facet counts in the order every search engine returns them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any


def facet_list(counts: Counter, limit: int) -> list[tuple[str, int]]:
    """The ``limit`` most frequent values, most frequent first, ties by value.

    This is the order of Elasticsearch's terms aggregation (count descending, key ascending),
    so the embedded engine and Elasticsearch list the same facets in the same order.

    >>> facet_list(Counter({"因学": 2, "因病": 2, "因残": 5}), 2)
    [('因残', 5), ('因学', 2)]
    """
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]


def day_key(facets: Mapping[str, Any]) -> int:
    """The 年度 order's key of a document: its date as ``YYYYMMDD`` (the ``date`` facet), else
    its year as ``YYYY0000`` (after the dated documents of that year, newest first), else 0
    (no date: last). Every engine sorts by this, newest first.

    >>> day_key({"year": 2016, "date": "2016-10-12"}), day_key({"year": "2016"}), day_key({})
    (20161012, 20160000, 0)
    """
    digits = str(facets.get("date") or "").replace("-", "")
    if len(digits) == 8 and digits.isdigit():
        return int(digits)
    year = str(facets.get("year") or "")
    return int(year) * 10000 if year.isdigit() and len(year) == 4 else 0
