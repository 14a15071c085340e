"""Facet counts in the order every search engine returns them."""

from __future__ import annotations

from collections import Counter


def facet_list(counts: Counter, limit: int) -> list[tuple[str, int]]:
    """The ``limit`` most frequent values, most frequent first, ties by value.

    This is the order of Elasticsearch's terms aggregation (count descending, key ascending),
    so the embedded engine and Elasticsearch list the same facets in the same order.

    >>> facet_list(Counter({"因学": 2, "因病": 2, "因残": 5}), 2)
    [('因残', 5), ('因学', 2)]
    """
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
