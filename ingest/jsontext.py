"""JSON documents for people and machines alike: indented near the top, one line per entry
deeper down.

``json.dumps(indent=2)`` runs the pure-Python encoder, and a report listing a problem for
each of tens of thousands of files spends most of its time there; below ``depth`` each
value is written by the C encoder on one line, which also keeps long lists readable
(one file per line).

>>> print(dumps({"files": [{"path": "a.pdf", "pages": 3}], "tool": "x"}, depth=2))
{
  "files": [
    {"path": "a.pdf", "pages": 3}
  ],
  "tool": "x"
}
"""

from __future__ import annotations

import json
from typing import Any


def dumps(value: Any, depth: int = 2, indent: int = 2) -> str:
    """``value`` as JSON (UTF-8 text, not ASCII-escaped).

    Arguments:
        value: JSON-serialisable data (string keys).
        depth: containers nested this deep or deeper are written on one line.
        indent: spaces per level above ``depth``.
    """
    return _dump(value, 0, depth, indent)


def _dump(value: Any, level: int, depth: int, indent: int) -> str:
    if level >= depth or not isinstance(value, (dict, list)) or not value:
        return json.dumps(value, ensure_ascii=False)
    pad = " " * (indent * (level + 1))
    if isinstance(value, dict):
        items = [f"{pad}{json.dumps(str(key), ensure_ascii=False)}: "
                 f"{_dump(item, level + 1, depth, indent)}" for key, item in value.items()]
        opening, closing = "{", "}"
    else:
        items = [pad + _dump(item, level + 1, depth, indent) for item in value]
        opening, closing = "[", "]"
    return f"{opening}\n" + ",\n".join(items) + f"\n{' ' * (indent * level)}{closing}"
