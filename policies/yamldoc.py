"""YAML documents that remember where each value was written, checked by a JSON Schema.

A bureau edits policies by hand, so an error must say which file and which line to fix.
:func:`load_marked` parses YAML keeping the line of every mapping key and list entry (and
refuses duplicate keys, which PyYAML would silently overwrite); :func:`schema_errors` runs a
JSON Schema over the data and returns each violation with its line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    import jsonschema
    from policies.config import Settings

PathKey = tuple[Any, ...]

# libyaml's parser when PyYAML was built with it (about ten times faster; the same nodes
# and line marks), else the pure-Python one
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlDocError(ValueError):
    """A YAML file does not parse (the message names file and line)."""


@dataclass
class MarkedDoc:
    """Parsed YAML data plus the line (1-based) where each part of it starts.

    Attributes:
        data: the plain Python value (dicts, lists, scalars).
        path: the file it came from.
        lines: JSON path (keys and indexes) -> line number.
    """

    data: Any
    path: Path
    lines: dict[PathKey, int] = field(default_factory=dict)

    def line(self, where: PathKey) -> int:
        """The line of ``where``, or of its nearest ancestor that has one."""
        where = tuple(where)
        while where and where not in self.lines:
            where = where[:-1]
        return self.lines.get(where, 1)

    def at(self, where: PathKey) -> str:
        """``file: line N`` for messages."""
        return f"{self.path}: line {self.line(where)}"


def load_marked(path: Path) -> MarkedDoc:
    """Parse a YAML file, keeping lines.

    Raises:
        YamlDocError: unreadable file, YAML syntax error or duplicate key (file and line).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise YamlDocError(f"{path}: cannot read: {exc}") from exc
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        doc = MarkedDoc(None, Path(path))
        doc.data = _convert(loader, node, (), doc) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        raise YamlDocError(f"{path}: {where}: {exc.problem or exc.context}") from exc
    finally:
        loader.dispose()
    return doc


def _convert(loader: Any, node: yaml.Node, where: PathKey, doc: MarkedDoc) -> Any:
    doc.lines.setdefault(where, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in result:
                raise YamlDocError(f"{doc.path}: line {key_node.start_mark.line + 1}: "
                                   f"key {key!r} appears twice")
            doc.lines[(*where, key)] = key_node.start_mark.line + 1
            result[key] = _convert(loader, value_node, (*where, key), doc)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_convert(loader, child, (*where, index), doc)
                for index, child in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


@cache
def _validator(schema_path: Path) -> jsonschema.Draft202012Validator:
    import jsonschema  # 0.1 s to import: only once a document is checked

    # the schemas ship with the code and are checked against the meta-schema by the tests:
    # checking them again here cost 0.1 s of every command's start
    return jsonschema.Draft202012Validator(json.loads(schema_path.read_text(encoding="utf-8")))


def schema_errors(doc: MarkedDoc, schema_path: Path) -> list[str]:
    """Every violation of the JSON Schema, as ``file: line N: where: what``, in line order."""
    found = []
    for error in _validator(schema_path).iter_errors(doc.data):
        where = tuple(error.absolute_path)
        label = ".".join(str(p) for p in where) or "(top level)"
        found.append((doc.line(where), f"{doc.at(where)}: {label}: {error.message}"))
    return [message for _, message in sorted(found)]


SCHEMAS = Path(__file__).with_name("schemas")


def load_checked_policy(name: str, settings: Settings) -> MarkedDoc:
    """Read policy ``name`` (the home's copy, else the shipped default) and check its schema.

    Raises:
        ConfigError: unreadable, not YAML, or against ``schemas/<name>.schema.json``; every
            violation is listed with file and line.
    """
    from policies.errors import ConfigError
    from policies.loader import DATA, policy_path

    path = policy_path(name, settings)
    try:
        doc = load_marked(path)
    except YamlDocError as exc:
        raise ConfigError(str(exc)) from exc
    # a shipped default is checked against its schema by the tests; a bureau's own, every time
    problems = ([] if path.parent == DATA
                else schema_errors(doc, SCHEMAS / f"{name}.schema.json"))
    if problems:
        raise ConfigError(f"invalid {name} policy:\n  " + "\n  ".join(problems))
    return doc
