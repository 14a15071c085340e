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

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_WORD_CHARS = "0-9A-Za-z\u00c0-\u024f"
_RUNS = re.compile(rf"([{_CJK}]+)|([{_WORD_CHARS}]+)")
# in one pass, in text order: each bigram of a CJK run (a look-ahead, so they overlap), a CJK
# character standing alone, or a word of letters and digits
_GRAMS = re.compile(rf"(?=([{_CJK}]{{2}}))|(?<![{_CJK}])([{_CJK}])(?![{_CJK}])|([{_WORD_CHARS}]+)")
_CJK_RUN = re.compile(rf"[{_CJK}]+")
_WORD = re.compile(rf"[{_WORD_CHARS}]+")


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
    """Return the ``grams`` and ``words`` views of a text, tokens separated by spaces.

    ``grams`` keeps the order of the text (words are phrases of it); ``words`` is matched one
    word at a time, so its order is of no consequence: the CJK runs go to jieba in one call
    (jieba cuts each line on its own, exactly as run by run, at a fraction of the cost).

    >>> index_tokens("因病致贫 2016年")
    ('因病 病致 致贫 2016 年', '2016 致贫')
    """
    text = normalise(text)
    grams = [pair or single or word for pair, single, word in _GRAMS.findall(text)]
    words = _WORD.findall(text)
    cjk = _CJK_RUN.findall(text)
    if cjk:
        import rjieba  # its dictionary costs 0.15 s to load: only where text is indexed

        words.extend(w for w in rjieba.cut_for_search("\n".join(cjk))
                     if len(w) > 1 and "\n" not in w)
    return " ".join(grams), " ".join(words)


def term_tokens(term: str) -> list[list[str]]:
    """Split a query term into phrases of gram tokens (one phrase per run of the term).

    >>> term_tokens("因病致贫")
    [['因病', '病致', '致贫']]
    >>> term_tokens("2016年")
    [['2016'], ['年']]
    """
    return [bigrams(run) if is_cjk else [run] for is_cjk, run in _runs(term)]
