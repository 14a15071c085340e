"""Lazy re-exports: a package names its API in one table, and a name is imported at first use.

``policies`` and each sub-package of ``storage`` name their public API in one table (name ->
module); a name is imported the first time it is used, so ``import storage.catalogue`` costs
nothing and a command that never touches S3 never imports boto3. The table is the API: other
packages import from the package (``from storage.catalogue import Catalogue``), never from its
modules. (It lives in ``policies`` because that package imports nothing of Dangan's, so every
package may use it.)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, table: Mapping[str, str]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return the ``__getattr__`` and ``__dir__`` of a package exporting ``table``.

    Arguments:
        package: the package's ``__name__``.
        table: exported name -> the package's module that defines it (relative, e.g.
            ``"database"``); a name equal to its module exports the module itself.

    Returns:
        ``(__getattr__, __dir__)`` for the package's namespace (PEP 562).
    """

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        loaded = importlib.import_module(f"{package}.{module}")
        value = loaded if module == name else getattr(loaded, name)
        # cache, so the next access is a plain attribute
        importlib.import_module(package).__dict__[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(table)

    return __getattr__, __dir__
