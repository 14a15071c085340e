"""Appraisal and disposition (鉴定与销毁).

Reaching the end of a 保管期限 never deletes anything: it puts the AIP before the appraisal
committee. :mod:`~storage.appraisal.due` lists what is due."""

from __future__ import annotations

from typing import TYPE_CHECKING

from policies.lazy import lazy_exports

_API = {
    # due
    "DueAip": "due",
    "retention_due": "due",
}

__all__ = sorted(_API)
__getattr__, __dir__ = lazy_exports(__name__, _API)

if TYPE_CHECKING:  # what static tools see; nothing is imported at run time
    from storage.appraisal.due import DueAip, retention_due
