"""Snippets of long texts are masked around the snippet only: the answer must be exactly the
snippet of the whole text masked, wherever numbers fall against the snippet's edges."""

from __future__ import annotations

import random

from access.rules import mask_numbers
from access.search.embedded import MASK_MARGIN, highlight, masked_snippet
from holdings import id_number

WORDS = ["因病", "低保", "光伏", "扶贫手册", "Road"]
WIDE = str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")


def _text(rng: random.Random, length: int) -> str:
    """Chinese text strewn with ID numbers (18 and 15 digits), phone-like and long digit
    runs, some touching each other or the words."""
    pieces = []
    while sum(map(len, pieces)) < length:
        roll = rng.random()
        if roll < 0.05:   # the other ways numbers are written: groups, full width, x
            number = id_number(f"{rng.randint(110000, 659999)}19{rng.randint(50, 99)}"
                               f"{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
                               f"{rng.randint(0, 999):03d}")
            sep = rng.choice([" ", "-", "\u3000"])
            form = rng.choice(["groups", "wide", "lower"])
            pieces.append(f"{number[:6]}{sep}{number[6:14]}{sep}{number[14:]}" if form == "groups"
                          else number.translate(WIDE) if form == "wide" else number.lower())
        elif roll < 0.15:
            pieces.append(id_number(f"{rng.randint(110000, 659999)}19{rng.randint(50, 99)}"
                                    f"{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
                                    f"{rng.randint(0, 999):03d}"))
        elif roll < 0.2:
            pieces.append(str(rng.randint(10 ** 14, 10 ** 15 - 1)))
        elif roll < 0.3:
            pieces.append("".join(rng.choice("0123456789") for _ in range(rng.randint(1, 30))))
        elif roll < 0.4:
            pieces.append(rng.choice(WORDS))
        else:
            pieces.append("".join(rng.choice("因病致贫户主家庭人口住房，。X x") for _ in
                                  range(rng.randint(1, 25))))
    return "".join(pieces)[:length]


def test_a_masked_window_is_the_whole_text_masked() -> None:
    rng = random.Random(11)
    checked = 0
    for _ in range(3000):
        content = _text(rng, rng.randint(300, 3000))
        terms = rng.sample(WORDS, rng.randint(0, 2))
        width = rng.choice([20, 80, 200])
        assert masked_snippet(content, terms, width) == \
            highlight(mask_numbers(content), terms, width), (content, terms, width)
        checked += len(content) > 4 * width
    assert checked > 2000          # most cases took the windowed path
    assert MASK_MARGIN > 2 * (18 + 17)


def test_no_id_number_survives_in_a_snippet() -> None:
    number = id_number("63012119800101123")
    content = "因病" * 400 + "户主身份证" + number + "，家庭人口4人。" + "因病" * 400
    for terms in (["身份证"], ["家庭人口"], [number[:6]]):
        snippet = masked_snippet(content, terms)
        assert number not in snippet and number[6:14] not in snippet
        assert number[-4:] in snippet        # the last four digits stay, as everywhere


def test_grouped_and_full_width_numbers_are_masked_in_snippets() -> None:
    """``630121 12345678 5633`` (not even a valid number) and full-width digits are masked."""
    for written, hidden in (("630121 12345678 5633", "12345678"),
                            ("630121-12345678-5633", "12345678"),
                            ("６３０１２１１９８００１０１１２３Ｘ".translate(WIDE), "１９８００１０１"),
                            (id_number("63012119800101123").lower(), "19800101")):
        content = "因病" * 400 + "备注：户主身份证" + written + "，家庭人口4人。" + "因病" * 400
        snippet = masked_snippet(content, ["身份证"])
        assert hidden not in snippet, snippet
        assert "********" in snippet
