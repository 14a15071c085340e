"""Place names for administrative codes (行政区划): the shipped table
(``vocabularies/places.yaml``) under the home's ``places.yaml`` (a bureau's townships and
villages, and those a sample transfer invents). :func:`place_name` names a code;
:func:`add_places` merges names into a home's table."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import yaml

SHIPPED = Path(__file__).with_name("vocabularies") / "places.yaml"
HOME_FILE = "places.yaml"
_CODE = re.compile(r"^\d{2}(\d{2}){0,2}(\d{3}){0,2}$")


class PlacesError(ValueError):
    """A places file that is not a mapping of codes to names (the message names the file)."""


def _read(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise PlacesError(f"{path}: not YAML: {exc}") from exc
    places = data.get("places") if isinstance(data, dict) else None
    if not isinstance(places, dict):
        raise PlacesError(f"{path}: expected a mapping `places:` of codes to names")
    out = {}
    for code, name in places.items():
        code = str(code)
        if not _CODE.match(code) or not isinstance(name, str) or not name.strip():
            raise PlacesError(f"{path}: {code!r}: a code of 2, 4, 6, 9 or 12 digits and its "
                              "name are expected")
        out[code] = name.strip()
    return out


@lru_cache(maxsize=16)
def _table(home: str, stamp: float) -> dict[str, str]:
    return {**_read(SHIPPED), **_read(Path(home) / HOME_FILE)}


def load_places(home: Path | None = None) -> dict[str, str]:
    """Code -> name: the shipped table with the home's over it (read again when the home's
    file changes)."""
    folder = Path(home or os.environ.get("DANGAN_HOME", "dangan-home"))
    path = folder / HOME_FILE
    stamp = path.stat().st_mtime if path.is_file() else 0.0
    return _table(str(folder), stamp)


def place_name(code: str, home: Path | None = None, *, full: bool = False) -> str | None:
    """The name of ``code`` (``630121100`` -> ``河西镇``; with ``full``, the names of the
    levels above too: ``大通回族土族自治县河西镇``); None when the table does not know it."""
    places = load_places(home)
    code = str(code)
    name = places.get(code)
    if name is None or not full:
        return name
    above = [places[code[:n]] for n in (6, 9) if n < len(code) and code[:n] in places]
    return "".join(above + [name])


def add_places(home: Path, names: Mapping[str, str]) -> Path:
    """Merge ``names`` into the home's ``places.yaml`` (made when absent); returns its path."""
    path = Path(home) / HOME_FILE
    current = _read(path)
    current.update({str(k): v for k, v in names.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    text = ("# 行政区划名称 of this home (code: name), over the shipped table; see\n"
            "# metadata_profiles/vocabularies/places.yaml\n"
            + yaml.safe_dump({"places": dict(sorted(current.items()))}, allow_unicode=True,
                             default_flow_style=False, sort_keys=False))
    path.write_text(text, encoding="utf-8")
    return path
