"""The portal's translation markers. Strings shown through ``gettext`` at run time (a table's
value looked up by a code) are marked where they are written with :func:`N_`, so that the
catalogue's extraction (``access/portal/babel.cfg``, keyword ``N_``) finds them and the
English catalogue can be checked for every one."""

from __future__ import annotations


def N_(text: str) -> str:  # noqa: N802 - gettext's own name for the marker
    """Mark ``text`` for translation without translating it (``gettext_noop``)."""
    return text


def NP_(context: str, text: str) -> str:  # noqa: N802
    """Mark ``text`` for translation in ``context`` (shown later with ``pgettext``)."""
    return text


KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "pgettext": ((1, "c"), 2),
            "npgettext": ((1, "c"), 2, 3), "N_": None, "NP_": ((1, "c"), 2)}
"""The calls and markers extraction reads (Babel's keyword specifications)."""
