"""Search documents of a stored AIP, from what the AIP itself holds (for ``dangan rebuild``).

Ingest makes an AIP's search documents from its items, the files of each item with their
formats, the profile's protected fields and the extracted full text. All of it is in the AIP
(``mets.xml`` and ``data/metadata/text/``), so a catalogue rebuilt from storage gets the same
documents by running the same code (:func:`ingest.describe._documents` and
:func:`ingest.fulltext.attach`) on what the AIP recorded. Storage reaches this through the
``dangan.rebuild`` entry point, as it may not import ingest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from ingest.describe import _documents
from ingest.fulltext import TEXT_DIR, attach
from metadata_profiles import ProfileError, load_profile
from storage.catalogue import SearchDocument
from storage.aip import AipDescription

OBJECTS = "data/objects/"


@dataclass(frozen=True)
class _Text:
    text: str
    status: str = "passed"   # a stored text was extracted; nothing is pending


def documents_from_aip(description: AipDescription, texts: Mapping[str, str],
                       home: Path | None = None) -> list[SearchDocument]:
    """The search documents ingest made for this AIP.

    Arguments:
        description: the AIP's METS description (items, files with formats and items).
        texts: bag path -> content of the AIP's extracted-text files (``data/metadata/text/``).
        home: the Dangan home whose own profiles are looked up first.

    Returns:
        One document per item, as at ingest.
    """
    item_of = {f.path[len(OBJECTS):]: f.item_id for f in description.files
               if f.path.startswith(OBJECTS) and f.item_id}
    formats = {f.path[len(OBJECTS):]: SimpleNamespace(puid=f.puid) for f in description.files
               if f.path.startswith(OBJECTS)}
    never: set[str] = set()
    if description.profile:
        try:
            profile = load_profile(description.profile, home)
            never = set(profile.protected_fields) | set(profile.masked_fields)
        except ProfileError:
            never = set()
    unit = SimpleNamespace(archival_code=description.archival_code)
    analysis = SimpleNamespace(formats=formats)
    documents = _documents(list(description.items), unit, analysis, item_of, never)
    prefix = f"{TEXT_DIR}/"
    results = {path[len(prefix):-len(".txt")]: _Text(content) for path, content in texts.items()
               if path.startswith(prefix) and path.endswith(".txt")}
    attach(documents, item_of, results)
    return documents
