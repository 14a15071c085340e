"""Descriptive metadata profiles as data: a YAML file per profile.

A profile names its fields (our English name, the Chinese column heading, whether it is
mandatory) and the synonyms county offices use for the same column, so that a bureau adapts
Dangan to its catalogue sheets by editing YAML, never code. Profiles are looked up in
``$DANGAN_HOME/profiles/`` first, then among the ones shipped here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SHIPPED = Path(__file__).with_name("profiles")


class ProfileError(ValueError):
    """A profile file is missing or malformed (the message names file and line)."""


@dataclass(frozen=True)
class FieldSpec:
    """One field of a profile."""

    name: str
    zh: str
    req: str = "O"
    synonyms: tuple[str, ...] = ()
    is_list: bool = False
    pii: str = "none"


@dataclass(frozen=True)
class Profile:
    """A descriptive metadata profile.

    Attributes:
        id: short name (``jzfp``).
        title: Chinese name.
        aggregation: ``户卷`` when household volumes form one AIP each, else ``件``.
        fields: the fields in sheet order.
        path: the YAML file it was read from.
    """

    id: str
    title: str
    version: str
    aggregation: str
    fields: tuple[FieldSpec, ...]
    path: Path
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def headings(self) -> dict[str, str]:
        """Every accepted column heading (names, synonyms) -> field name."""
        table = {}
        for spec in self.fields:
            for heading in (spec.zh, spec.name, *spec.synonyms):
                table[normalise_heading(heading)] = spec.name
        return table

    def field(self, name: str) -> FieldSpec:
        for spec in self.fields:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @property
    def mandatory(self) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.fields if f.req == "M")


def normalise_heading(text: str) -> str:
    """Headings compare without spaces, line breaks and full-width forms."""
    import unicodedata

    return "".join(unicodedata.normalize("NFKC", str(text)).split())


def profile_dirs(home: Path | None = None) -> list[Path]:
    """Folders searched for profiles, the bureau's own first."""
    home = home or Path(os.environ.get("DANGAN_HOME", "dangan-home"))
    return [home / "profiles", SHIPPED]


def load_profile(name: str, home: Path | None = None) -> Profile:
    """Load profile ``name``.

    Raises:
        ProfileError: unknown profile, YAML error (with line) or missing keys.
    """
    for folder in profile_dirs(home):
        path = folder / f"{name}.yaml"
        if path.exists():
            return _parse(path)
    known = sorted({p.stem for d in profile_dirs(home) if d.is_dir() for p in d.glob("*.yaml")})
    raise ProfileError(f"unknown metadata profile {name!r}; known: {', '.join(known)}")


def _parse(path: Path) -> Profile:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise ProfileError(f"{path}: line {mark.line + 1 if mark else '?'}: {exc.problem}") from exc
    if not isinstance(data, dict) or "id" not in data or "fields" not in data:
        raise ProfileError(f"{path}: a profile needs 'id' and 'fields'")
    fields = []
    for index, entry in enumerate(data["fields"]):
        if not isinstance(entry, dict) or "name" not in entry or "zh" not in entry:
            raise ProfileError(f"{path}: fields[{index}] needs 'name' and 'zh'")
        if entry.get("req", "O") not in ("M", "C", "O"):
            raise ProfileError(f"{path}: fields[{index}] ({entry['name']}): req must be M, C or O")
        fields.append(FieldSpec(str(entry["name"]), str(entry["zh"]), str(entry.get("req", "O")),
                                tuple(str(s) for s in entry.get("synonyms", [])),
                                bool(entry.get("list", False)), str(entry.get("pii", "none"))))
    return Profile(str(data["id"]), str(data.get("title", data["id"])),
                   str(data.get("version", "")), str(data.get("aggregation", "件")),
                   tuple(fields), path)
