"""A deterministic corpus of search documents and a brute-force reference search over it.

The reference (:func:`reference_search`) is the query language's meaning written out plainly:
a document matches a word when each run of the word is a run of consecutive tokens of the
document (:mod:`storage.index.textseg`), all words must match, excluded words must not, facet
filters OR their values and AND their fields. Every engine must agree with it.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from access.search.facets import facet_list
from access.search.query import FACET_FIELDS, Query
from storage.catalogue import SearchDocument
from storage.index import index_tokens, term_tokens

NAMES = ["王文全", "李秀英", "张建国", "刘桂兰", "陈志强", "杨海燕", "赵德胜", "马玉梅"]
DOC_TYPES = ["贫困户申请书", "入户调查表", "民主评议会议记录", "两公示一公告", "扶贫手册",
             "脱贫确认书", "危房改造验收表", "易地扶贫搬迁协议"]
CAUSES = ["因病", "因残", "因学", "缺技术", "缺劳力", "缺资金", "因灾"]
MEASURES = ["低保兜底", "产业扶持：种植3.5亩核桃", "就业帮扶", "教育资助", "危房改造",
            "易地扶贫搬迁", "医疗救助 先诊疗后付费", "小额信贷 Poverty Alleviation Loan",
            "ＡＢＣ合作社 分红", "光伏扶贫"]
VILLAGES = ["630121100201", "630121100202", "630121200301", "630122100101"]
TYPES = ["一般贫困户", "低保贫困户", "特困供养户"]
EXTRA = ["2016年度帮扶计划已落实", "第一 年 总结", "已脱贫，不返贫", "因病致贫，住院治疗",
         "村委会评议通过", "搬迁后 人均收入 提高"]


@dataclass
class CorpusDoc:
    """A document as loaded, with its catalogue order (``seq``)."""

    seq: int
    aip_uuid: str
    doc: SearchDocument

    @property
    def key(self) -> tuple[str, str | None]:
        return self.aip_uuid, self.doc.item_key


def build_corpus(aips: int = 40, seed: int = 11) -> list[tuple[str, list[SearchDocument]]]:
    """AIPs (uuid, documents) of household volumes with their items; deterministic."""
    rng = random.Random(seed)
    out = []
    for a in range(aips):
        aip = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        village = rng.choice(VILLAGES)
        name = NAMES[a % len(NAMES)]
        code = None if a % 13 == 5 else f"Q001-JF·02·{village}-{a:04d}"
        causes = sorted(rng.sample(CAUSES, rng.choice([1, 1, 2])))
        household = rng.choice(TYPES)
        docs = [SearchDocument("item-000", code, f"建档立卡户档案 {name}户",
                               f"{name}\n{village}\n{household}\n{' '.join(causes)}",
                               _facets("户卷", None, village, household, causes, []))]
        for i in range(1, rng.randint(3, 6)):
            year = None if (a + i) % 17 == 0 else rng.choice([2014, 2015, 2016, 2017, 2018])
            # a full date for most documents (the 年度 order within a year), the year alone
            # for some (drawn apart, so the rest of the corpus stays as it was)
            days = random.Random(seed * 100_003 + a * 17 + i)
            day = (f"{year}-{days.randint(1, 12):02d}-{days.randint(1, 28):02d}"
                   if year and (a + i) % 5 else None)
            kind = rng.choice(DOC_TYPES)
            text = "\n".join([name, kind, rng.choice(MEASURES), rng.choice(EXTRA),
                              f"{year or ''}0520", f"{i:03d}-{kind}.pdf"])
            formats = [rng.choice(["fmt/17", "fmt/43", "fmt/412"])]
            docs.append(SearchDocument(f"item-{i:03d}", f"{code}-{i:03d}" if code else None,
                                       f"{name}{kind}", text,
                                       _facets("件", year, village, household, causes, formats,
                                               day)))
        out.append((aip, docs))
    return out


def _facets(level: str, year: int | None, village: str, household: str, causes: list[str],
            formats: list[str], day: str | None = None) -> dict[str, Any]:
    facets = {"level": level, "category": "02", "year": year, "date": day,
              "retention": "Y" if level == "户卷" or (year or 0) % 2 else "D30",
              "county": village[:6], "township": village[:9], "village": village,
              "household_type": household, "poverty_causes": causes, "formats": formats}
    return {k: v for k, v in facets.items() if v}


# -- the reference ---------------------------------------------------------------------------

def _contains(tokens: list[str], phrase: list[str]) -> bool:
    n = len(phrase)
    return any(tokens[i:i + n] == phrase for i in range(len(tokens) - n + 1))


def _values(value: Any) -> list[str]:
    return [str(v) for v in (value if isinstance(value, list) else [value]) if v is not None]


def matches(doc: SearchDocument, query: Query) -> bool:
    """Whether a document answers the query (words, exclusions and facet filters)."""
    tokens = index_tokens(f"{doc.archival_code or ''} {doc.title}\n{doc.text}")[0].split()
    words = [[p for p in term_tokens(t) if p] for t in query.terms]
    words = [w for w in words if w]
    if words:
        if not all(all(_contains(tokens, p) for p in w) for w in words):
            return False
        if any(_contains(tokens, p) for t in query.excluded for p in term_tokens(t) if p):
            return False
    for name, wanted in query.filters.items():
        if name in FACET_FIELDS and not set(_values(doc.facets.get(name))) & set(wanted):
            return False
    return True


def reference_search(corpus: list[CorpusDoc], query: Query, sort: str,
                     facet_limit: int) -> tuple[list[tuple[str, str | None]], dict]:
    """Matching documents in ``sort`` order (code or date; relevance: catalogue order) and
    the facet counts."""
    found = [d for d in corpus if matches(d.doc, query)]
    if sort == "code":
        found.sort(key=lambda d: (d.doc.archival_code or "\uffff", d.seq))
    elif sort == "date":
        # newest first by the full date; a document with the year alone after the dated
        # ones of its year; one without a year last
        def newest(d: CorpusDoc) -> tuple[int, int]:
            day = str(d.doc.facets.get("date") or "").replace("-", "")
            year = str(d.doc.facets.get("year") or "")
            key = int(day) if day else int(year) * 10000 if year else 0
            return (-key, d.seq)

        found.sort(key=newest)
    counts: dict[str, Counter] = {name: Counter() for name in FACET_FIELDS}
    for d in found:
        for name in FACET_FIELDS:
            for value in _values(d.doc.facets.get(name)):
                counts[name][value] += 1
    return [d.key for d in found], {n: facet_list(c, facet_limit) for n, c in counts.items() if c}
