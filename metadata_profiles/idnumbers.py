"""Citizen ID numbers (公民身份号码, GB 11643) found in free text, however they were written.

A catalogue's 备注, a member column, a file name or a scanned page writes a number as 18
characters together (``630121195402144291``), in the usual 6-8-4 groups with spaces or dashes
(``630121 19540214 4291``, ``630121-19540214-4291``), in full-width digits
(``６３０１２１…``), with a lower-case check character ``x``, or in other groups. Every form is
found and masked the same way: its 7th to 14th digits become ``*`` where they stand
(``630121 ******** 4291``), so a masked text keeps its length and layout, and a value that is
one number is shown in the canonical masked form (``630121********4291``):

* 18 characters together, and the 6-8-4 and 6-4-4-4 groupings, whatever the check digit says
  (a mistyped number is still a person's number);
* any other grouping only when the number is valid (check digit and birth date), so a table
  of small numbers is not taken for one;
* 15 digits together (the pre-1999 form).

>>> mask_id_numbers("户主 630121 12345678 5633，妻 ６３０１２１１９５４０２１４４２９１")
'户主 630121 ******** 5633，妻 ６３０１２１********４２９１'
>>> [m.number for m in find_id_numbers("身份证：63012119540214429x 电话 13912345678")]
['63012119540214429X']
>>> normalise_id_number("630121-19540214-4291")
'630121195402144291'
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass


_DIGITS = "0-9\uff10-\uff19"
_CHECK = "Xx\uff38\uff58"
_GROUP = re.compile(rf"[{_DIGITS}]+(?:[{_CHECK}](?![{_DIGITS}A-Za-z]))?")
_SEPARATOR = re.compile(r"[ \u00a0\u2009\u3000\-\u2010-\u2014\uff0d]")
_RUN = re.compile(
    rf"(?<![{_DIGITS}A-Za-z\uff21-\uff3a\uff41-\uff5a])"
    rf"[{_DIGITS}]+(?:[ \u00a0\u2009\u3000\-\u2010-\u2014\uff0d][{_DIGITS}]+)*+"
    rf"(?:[{_CHECK}])?(?![{_DIGITS}A-Za-z\uff21-\uff3a\uff41-\uff5a])")
_GROUPINGS_ANY_CHECK = ((18,), (6, 8, 4), (6, 4, 4, 4))
MASK = "********"
MAX_SPAN = 18 + 17
"""The most characters one number takes in a text (18 digits, a separator between each)."""


@dataclass(frozen=True)
class IdNumberMatch:
    """One ID number found in a text.

    Attributes:
        start, end: its span in the text (separators included).
        number: the number in its canonical form (ASCII, upper-case ``X``, no separators).
        valid: whether the check digit and birth date are right (``stdnum.cn.ric``).
    """

    start: int
    end: int
    number: str
    valid: bool

    @property
    def masked(self) -> str:
        """The masked form: 6 digits + ``********`` + 4 (15-digit numbers: 6 + ``*****`` + 4)."""
        return mask_id_number(self.number)


def _canonical(text: str) -> str:
    return unicodedata.normalize("NFKC", text).upper()


def _valid(number: str) -> bool:
    from stdnum.cn import ric  # loaded when a candidate is first seen, not at start-up

    try:
        return ric.is_valid(number)
    except Exception:  # noqa: BLE001 - stdnum may raise on odd input; it is then no number
        return False


def _accept(groups: list[re.Match[str]], number: str) -> bool:
    sizes = tuple(len(g.group()) for g in groups)
    if not number[:17].isdigit() or number[0] == "0" or not (number[17].isdigit()
                                                              or number[17] == "X"):
        return False
    return sizes in _GROUPINGS_ANY_CHECK or _valid(number)


def _in_run(run: re.Match[str]) -> list[IdNumberMatch]:
    """The numbers in one run of digit groups joined by single separators."""
    groups = list(_GROUP.finditer(run.group()))
    found: list[IdNumberMatch] = []
    base = run.start()
    i = 0
    while i < len(groups):
        first = groups[i]
        if len(groups) == 1 and len(first.group()) == 15 and first.group().isdigit():
            text = _canonical(first.group())
            if text[0] != "0":
                found.append(IdNumberMatch(base + first.start(), base + first.end(), text,
                                           False))
            break
        total, j, chosen = 0, i, None
        while j < len(groups) and total < 18:
            total += len(groups[j].group())
            j += 1
        if total == 18:
            span = groups[i:j]
            number = _canonical("".join(g.group() for g in span))
            # a check character may only end the number
            if "X" not in number[:17] and _accept(span, number):
                chosen = IdNumberMatch(base + span[0].start(), base + span[-1].end(), number,
                                       _valid(number))
        if chosen is not None:
            found.append(chosen)
            i = j
        else:
            i += 1
    return found


def find_id_numbers(text: str) -> list[IdNumberMatch]:
    """Every ID number in ``text``, in order (see the module docstring for the forms)."""
    text = str(text)
    if not any(ch.isdigit() for ch in text):
        return []
    found: list[IdNumberMatch] = []
    for run in _RUN.finditer(text):
        if len(run.group()) >= 15:
            found.extend(_in_run(run))
    return found


def mask_id_number(value: str) -> str:
    """One ID number as it may be shown: ``630121********4291`` (written in any form);
    a value that is no ID number is replaced by stars of its length."""
    text = str(value)
    number = normalise_id_number(text)
    if number is None:
        compact = _canonical(re.sub(_SEPARATOR, "", text))
        number = compact if len(compact) in (15, 18) else None
    if number is None:
        return "*" * len(text)
    if len(number) == 15:
        return number[:6] + "*****" + number[-4:]
    return number[:6] + MASK + number[-4:]


def mask_id_numbers(text: str) -> str:
    """``text`` with the middle digits of every ID number masked where they stand (the 7th
    to 14th; of a 15-digit number the 7th to 11th): same length, separators kept."""
    text = str(text)
    found = find_id_numbers(text)
    if not found:
        return text
    chars = list(text)
    for match in found:
        hidden = range(6, 14) if len(match.number) == 18 else range(6, 11)
        position = 0
        for index in range(match.start, match.end):
            if _SEPARATOR.fullmatch(chars[index]):
                continue
            if position in hidden:
                chars[index] = "*"
            position += 1
    return "".join(chars)


def normalise_id_number(value: str) -> str | None:
    """The canonical form of a value that is one ID number (and nothing else), else None."""
    text = str(value).strip()
    found = find_id_numbers(text)
    if len(found) == 1 and found[0].start == 0 and found[0].end == len(text):
        return found[0].number
    return None
