"""档号 (archival reference codes): normalise, parse, render from a template, find gaps.

The forms themselves are data (the profile's ``archival_code.forms``): DA/T 22-2015
(``Z109-WS·2011-Y-BGS-0001``), DA/T 13-2022 (``Z109-WS·2011·Y·办公室-0001``) and the household
volume (一户一卷) form ``Q001-JF·02·630121100201-0001[-001]``. This module only applies them.

>>> from metadata_profiles import load_profile
>>> rules = load_profile("jzfp").codes
>>> code = parse_code("Q001－WS•2016-Y-FPB-0007", rules)
>>> code.text, code.form.name, code.bucket, code.number
('Q001-WS·2016-Y-FPB-0007', 'dat22-item', 'Q001-WS·2016-Y-FPB', 7)
>>> find_gaps([1, 2, 5, 7])
[3, 4, 6]
"""

from __future__ import annotations

import string
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from metadata_profiles.loader import CodeForm, CodeRules, Normalisation

SEPARATORS = "-·"


@dataclass(frozen=True)
class ArchivalCode:
    """A parsed 档号.

    Attributes:
        text: the normalised code.
        form: the form it matched.
        parts: regex group -> value (only groups that matched).
        sequence_group: the group holding its running number (``item`` or ``vol``).
        number: that running number (件号 or 案卷号).
        width: digits the number was written with.
        bucket: everything before the running number: codes sharing a bucket are numbered
            1, 2, 3 … together.
        volume: the household volume code an item belongs to, or None.
    """

    text: str
    form: CodeForm
    parts: dict[str, str] = field(default_factory=dict)
    sequence_group: str = "item"
    number: int = 0
    width: int = 4
    bucket: str = ""
    volume: str | None = None

    @property
    def level(self) -> str:
        """``件`` for a file-level code (items inside a volume too), ``户卷`` for a volume's own."""
        if self.volume is None:
            return self.form.level
        return "户卷" if self.volume == self.text else "件"


def normalise_code(code: str, rules: Normalisation | None = None) -> str:
    """档号 with look-alike dots and dashes replaced, full-width forms folded, no spaces.

    >>> normalise_code(" Ｑ００１－ＷＳ・2016－Y－0001 ")
    'Q001-WS·2016-Y-0001'
    """
    rules = rules or Normalisation()
    table = {ord(c): rules.interpunct for c in rules.interpuncts}
    table.update({ord(c): rules.hyphen for c in rules.hyphens})
    # fold before NFKC (which turns U+FF0E into ".") and after it (U+FF65 becomes U+30FB)
    text = unicodedata.normalize("NFKC", str(code).strip().translate(table)).translate(table)
    return "".join(text.split())


def parse_code(text: str, rules: CodeRules, normalisation: Normalisation | None = None
               ) -> ArchivalCode | None:
    """Parse a 档号 against the profile's forms (after normalisation); None if none matches."""
    code = normalise_code(text, normalisation)
    for form in rules.forms:
        match = form.regex.fullmatch(code)
        if match is None:
            continue
        group = next((g for g in form.sequence if match.group(g) is not None), None)
        if group is None:
            continue
        digits = match.group(group)
        parts = {k: v for k, v in match.groupdict().items() if v is not None}
        volume = match.group(form.volume_group) if form.volume_group else None
        return ArchivalCode(code, form, parts, group, int(digits), len(digits),
                            code[:match.start(group)].rstrip(SEPARATORS), volume)
    return None


def render_template(template: str, values: Mapping[str, str], number: int, width: int) -> str:
    """Fill a 档号 template: field placeholders from ``values``, ``{item_no}`` zero-padded.

    Raises:
        KeyError: a placeholder has no (non-empty) value.
    """
    filled = {}
    for _, name, _, _ in string.Formatter().parse(template):
        if name and name != "item_no":
            value = str(values.get(name, "")).strip()
            if not value:
                raise KeyError(name)
            filled[name] = value
    return template.format(item_no=f"{number:0{width}d}", **filled)


def find_gaps(numbers: Iterable[int]) -> list[int]:
    """Numbers missing from 1 … max(numbers) (a 件号 sequence starts at 1)."""
    present = set(numbers)
    if not present:
        return []
    return [n for n in range(1, max(present) + 1) if n not in present]


def format_numbers(numbers: list[int], width: int = 4) -> str:
    """``[3, 5, 6, 7]`` -> ``'0003, 0005–0007'`` for reports."""
    ranges: list[list[int]] = []
    for n in sorted(numbers):
        if ranges and n == ranges[-1][1] + 1:
            ranges[-1][1] = n
        else:
            ranges.append([n, n])
    return ", ".join(f"{a:0{width}d}" if a == b else f"{a:0{width}d}–{b:0{width}d}"
                     for a, b in ranges)
