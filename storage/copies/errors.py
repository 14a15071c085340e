"""What retrieval raises, in a module of its own so that code which only catches it (the
portal, the access services) does not load the storage machinery to do so."""

from __future__ import annotations

from policies import FixityError


class NoIntactCopy(FixityError):
    """No copy of one file reads intact: each is damaged, missing or unreadable.

    Attributes:
        aip_uuid, path: the file.
        failures: one line per copy tried (``location: what happened``).
        known: the damage was on record already (nothing was read this time).
    """

    def __init__(self, aip_uuid: str, path: str, failures: list[str], known: bool = False):
        super().__init__(f"{aip_uuid}/{path}: no copy could be read intact: "
                         + "; ".join(failures), path=path)
        self.aip_uuid, self.failures, self.known = aip_uuid, failures, known
