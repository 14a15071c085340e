"""Personal information in a record's content: its extracted text, its files' names and its
free-text fields (备注, 题名), for records whose catalogue fields alone rate ``none``.

A county 安置户名单 or a 村委会 meeting record may list households by name, with their ID
numbers, illnesses or housing grades, although its catalogue row names nobody. What is looked
for, and what it means, is policy data (``content_pii`` in ``policies/data/access.yaml``):

* ``id_number`` — an ID number in any written form (:mod:`metadata_profiles.idnumbers`);
* ``household_name`` — the name of a household head held in the repository or in the same
  transfer (names shorter than ``min_name_chars`` are not looked for);
* ``household_name_with_words`` — such a name together with one of the policy's words
  (因病, 残疾, 低保, 危房 …).

>>> from policies.access import ContentPii
>>> rule = ContentPii(words=("因病", "危房"))
>>> kinds_in(["易地扶贫搬迁安置户名单：扎西才让，因病，D级危房"], rule, {"扎西才让"})
['household_name', 'household_name_with_words']
>>> kinds_in(["全县因病致贫户占 38%"], rule, {"扎西才让"})
[]
"""

from __future__ import annotations

from collections.abc import Iterable

from metadata_profiles import find_id_numbers
from policies.access import ContentPii


def kinds_in(texts: Iterable[str], rule: ContentPii, names: set[str] | frozenset[str]
             ) -> list[str]:
    """The kinds of personal information the texts hold (in :attr:`ContentPii.KINDS` order)."""
    texts = [t for t in texts if t]
    found: set[str] = set()
    if any(find_id_numbers(t) for t in texts):
        found.add("id_number")
    if names and any(_names_in(t, names, rule.min_name_chars) for t in texts):
        found.add("household_name")
        if any(word in t for t in texts for word in rule.words):
            found.add("household_name_with_words")
    return [k for k in ContentPii.KINDS if k in found]


def _names_in(text: str, names: set[str] | frozenset[str], shortest: int) -> bool:
    """Whether any of ``names`` occurs in ``text`` (one set look-up per position and length)."""
    lengths = sorted({len(n) for n in names if len(n) >= shortest})
    if not lengths or not any("\u3400" <= ch <= "\u9fff" or ch.isalpha() for ch in text):
        return False
    for length in lengths:
        for start in range(len(text) - length + 1):
            if text[start:start + length] in names:
                return True
    return False
