"""reid-hub: multi-species animal re-identification models, galleries and services.

The names below are loaded on first use (PEP 562), so that `import reid_hub` and commands that need no model (the
answers of a discovery folder) start without importing torch.
"""
from __future__ import annotations

import importlib
import logging
from typing import Any

from .errors import ReidHubError

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

#: public name -> the module that defines it
_LAZY = {
    "ReIDModel": "models.model", "create_model": "models.model",
    "ModelConfig": "models.configs", "list_models": "models.configs",
    "ModelCard": "models.loading", "from_pretrained": "models.loading", "save_pretrained": "models.loading",
    "push_to_hub": "models.loading", "DEFAULT_MODEL": "resources",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "ReIDModel",
    "ModelConfig",
    "ModelCard",
    "ReidHubError",
    "create_model",
    "list_models",
    "from_pretrained",
    "save_pretrained",
    "push_to_hub",
    "DEFAULT_MODEL",
    "__version__",
]
