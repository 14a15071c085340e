r"""Text as it may be shown: characters a terminal, XML, HTML or a report cannot show as
themselves are written as escapes, so that a hostile value (a control character, a lone
surrogate, a bidirectional override) is visible for what it is and never acts.

>>> print(shown_text("bad\x07name.txt"), shown_text("a\udcffb"), shown_text("报告\u202e.pdf"))
bad\x07name.txt a\xffb 报告\u202e.pdf
>>> shown_text("户卷/001-申请书.pdf")
'户卷/001-申请书.pdf'
"""

from __future__ import annotations

import unicodedata

BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
"""Bidirectional embeddings, overrides and isolates: they make text display as something
else (``报告\u202efdp.exe`` shows as ``报告exe.pdf``)."""


def noncharacter(code: int) -> bool:
    """Whether a code point is one of Unicode's 66 noncharacters (U+FDD0–FDEF, U+xFFFE/F)."""
    return 0xFDD0 <= code <= 0xFDEF or (code & 0xFFFE) == 0xFFFE


def needs_escape(ch: str, keep: str = "") -> bool:
    """Whether a character is shown escaped: controls (C0, DEL, C1), surrogates,
    noncharacters and bidirectional controls, unless listed in ``keep``."""
    if ch in keep:
        return False
    return (unicodedata.category(ch) in ("Cc", "Cs") or ch in BIDI_CONTROLS
            or noncharacter(ord(ch)))


def _escape(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:      # an undecodable byte, as os.fsdecode carries it
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def shown_text(text: str, keep: str = "", backslash: bool = True) -> str:
    """``text`` with every character :func:`needs_escape` names written as a Python-style
    escape (``\\x07``, ``\\u202e``; an undecodable byte as that byte); ``keep`` lists
    characters left as they are (``"\\n\\t"`` for multi-line text). When something was
    escaped a backslash is doubled too (unless ``backslash`` is false: a whole document), so
    that ordinary text is never changed."""
    text = str(text)
    if text.isprintable() and not any(noncharacter(ord(ch)) for ch in text if ord(ch) >= 0xFDD0):
        return text
    if not any(needs_escape(ch, keep) for ch in text):
        return text
    return "".join(("\\\\" if ch == "\\" and backslash else
                    _escape(ch) if needs_escape(ch, keep) else ch) for ch in text)
