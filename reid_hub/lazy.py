"""Public names of a package loaded on first use (PEP 562), so that importing the package stays cheap."""
from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_names(package: str, table: dict[str, str], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """The module `__getattr__` of `package`: a name in `table` (name -> submodule) is imported from its submodule
    the first time it is read, then kept in the package's `namespace`."""

    def __getattr__(name: str) -> Any:
        if name in table:
            value = getattr(importlib.import_module(f".{table[name]}", package), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


__all__ = ["lazy_names"]
