"""Chinese text segmentation shared by indexing and querying.

Two views of the same text are indexed:

* ``grams`` — every run of CJK characters as overlapping character bigrams (the scheme of
  Elasticsearch's built-in ``cjk`` analyzer) and other runs as lower-cased words. Any
  two-character word (因病, 低保, 脱贫) is then found even where a dictionary segmenter would
  split or swallow it (jieba cuts 因病致贫 into 因 / 病 / 致贫), and longer words are phrases
  of consecutive bigrams.
* ``words`` — dictionary words from jieba (``rjieba``, search mode), used to rank hits whose
  words match whole above hits that only share characters.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

import rjieba

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_RUNS = re.compile(rf"([{_CJK}]+)|([0-9A-Za-z\u00c0-\u024f]+)")


def normalise(text: str) -> str:
    """NFKC (full-width letters and digits become ASCII) and lower case."""
    return unicodedata.normalize("NFKC", text).lower()


def _runs(text: str) -> Iterator[tuple[bool, str]]:
    for match in _RUNS.finditer(normalise(text)):
        if match.group(1):
            yield True, match.group(1)
        else:
            yield False, match.group(2)


def bigrams(run: str) -> list[str]:
    """Overlapping bigrams of a CJK run; a single character stays itself."""
    if len(run) == 1:
        return [run]
    return [run[i:i + 2] for i in range(len(run) - 1)]


def index_tokens(text: str) -> tuple[str, str]:
    """Return the ``grams`` and ``words`` views of a text, tokens separated by spaces."""
    grams: list[str] = []
    words: list[str] = []
    for is_cjk, run in _runs(text):
        if is_cjk:
            grams.extend(bigrams(run))
            words.extend(w for w in rjieba.cut_for_search(run) if len(w) > 1)
        else:
            grams.append(run)
            words.append(run)
    return " ".join(grams), " ".join(words)


def term_tokens(term: str) -> list[list[str]]:
    """Split a query term into phrases of gram tokens (one phrase per run of the term).

    >>> term_tokens("因病致贫")
    [['因病', '病致', '致贫']]
    >>> term_tokens("2016年")
    [['2016'], ['年']]
    """
    return [bigrams(run) if is_cjk else [run] for is_cjk, run in _runs(term)]
