"""The search query language shared by every engine.

``因病 低保`` (all words), ``"易地扶贫搬迁"`` (a phrase), ``field:value`` (a filter on a facet
field: ``category:02``, ``year:2016``, ``retention:Y``, ``monitored:yes``: 防返贫监测 records
that follow a 建档立卡 household file), ``-word`` (exclude). Words are
matched as Chinese bigram phrases (see :mod:`storage.index.textseg`), so 2-character words are found
wherever they stand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

FACET_FIELDS = ("category", "year", "retention", "county", "township", "village",
                "household_type", "poverty_causes", "formats", "level", "monitored")
FIELD_ALIASES = {"类别": "category", "年度": "year", "保管期限": "retention", "县": "county",
                 "乡镇": "township", "村": "village", "贫困户属性": "household_type",
                 "致贫原因": "poverty_causes", "格式": "formats", "层次": "level",
                 "cause": "poverty_causes", "format": "formats", "监测": "monitored"}
_TOKEN = re.compile(r'(-?)(?:(\w+):)?(?:"([^"]*)"|(\S+))')


@dataclass
class Query:
    """A parsed query: positive terms, excluded terms and facet filters."""

    terms: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    filters: dict[str, list[str]] = field(default_factory=dict)
    scope: Any = None   # an access.rules.Scope: what the reader may find (None: everything)

    @property
    def empty(self) -> bool:
        return not self.terms and not self.filters


def parse_query(text: str, filters: dict[str, list[str]] | None = None) -> Query:
    """Parse the query syntax; ``filters`` (from facet links) are added to the parsed ones."""
    query = Query(filters={k: list(v) for k, v in (filters or {}).items() if v})
    for negate, name, phrase, word in _TOKEN.findall(text or ""):
        value = phrase if phrase else word
        if not value:
            continue
        key = FIELD_ALIASES.get(name, name) if name else None
        if key in FACET_FIELDS:
            query.filters.setdefault(key, []).append(value)
        else:
            if name:  # unknown field: search the text "name:value" literally
                value = f"{name}:{value}"
            (query.excluded if negate else query.terms).append(value)
    return query
