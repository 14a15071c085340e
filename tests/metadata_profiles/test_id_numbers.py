"""ID numbers in free text, however written: together, grouped 6-8-4 with spaces or dashes,
in full-width digits, with a lower-case ``x``; masked in place, found by their canonical form."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st
from stdnum.cn import ric

from metadata_profiles import find_id_numbers, mask_id_number, mask_id_numbers, normalise_id_number

VALID = "630121195402144291"


def with_check(first17: str) -> str:
    return first17 + ric.calc_check_digit(first17)


def test_every_written_form_is_masked() -> None:
    forms = {
        "630121195402144291": "630121********4291",
        "630121 19540214 4291": "630121 ******** 4291",
        "630121-19540214-4291": "630121-******** -4291".replace(" ", ""),
        "630121\u300019540214\u30004291": "630121\u3000********\u30004291",
        "630121 12345678 5633": "630121 ******** 5633",        # no valid date: still masked
        "６３０１２１１９５４０２１４４２９１": "６３０１２１********４２９１",
        "6301 2119 5402 1442 91": "6301 21** **** **42 91",      # other groups: valid only
    }
    for written, masked in forms.items():
        assert mask_id_numbers(f"备注：{written}。") == f"备注：{masked}。", written


def test_lower_case_x_and_the_canonical_form() -> None:
    number = with_check("63012119800101140")
    assert number.endswith("X")
    written = number.lower()
    assert mask_id_numbers(written) == written[:6] + "********" + written[14:]
    assert normalise_id_number(written) == number
    assert normalise_id_number("630121 19540214 4291") == VALID
    assert mask_id_number("630121 19540214 4291") == "630121********4291"
    assert mask_id_number("６３０１２１１９５４０２１４４２９１") == "630121********4291"


def test_what_is_not_a_number_stays() -> None:
    for text in ("电话 13912345678", "6301211954021442911", "页数 2016 2017 2018 2019 20",
                 "1 2 3 4 5 6 7 8 9 1 2 3 4 5 6 7 8 9", "X630121195402144291",
                 "6301 2119 5402 1442 92"):          # other grouping, wrong check digit
        assert mask_id_numbers(text) == text, text


def test_two_numbers_side_by_side() -> None:
    text = f"{VALID} 630121-12345678-5633"
    assert [m.number for m in find_id_numbers(text)] == [VALID, "630121123456785633"]
    assert mask_id_numbers(text) == "630121********4291 630121-********-5633"


digits = st.text(alphabet="0123456789", min_size=17, max_size=17).filter(lambda d: d[0] != "0")


@settings(max_examples=300, deadline=None)
@given(first17=digits, sep=st.sampled_from(["", " ", "-", "\u3000", "－"]),
       wide=st.booleans(), before=st.text(alphabet="因病户主备注：，。 ", max_size=6),
       after=st.text(alphabet="因病户主备注：，。 ", max_size=6))
def test_no_valid_number_survives_masking(first17, sep, wide, before, after) -> None:
    number = with_check(first17)
    written = f"{number[:6]}{sep}{number[6:14]}{sep}{number[14:]}"
    if wide:
        written = written.translate(str.maketrans("0123456789X", "０１２３４５６７８９Ｘ"))
    masked = mask_id_numbers(before + written + after)
    assert len(masked) == len(before + written + after)
    found = [m.number for m in find_id_numbers(before + written + after)]
    assert found == [number]
    assert number[6:14] not in masked.translate(str.maketrans("０１２３４５６７８９", "0123456789"))
