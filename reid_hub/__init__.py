"""reid-hub: multi-species animal re-identification models, galleries and services.

The names below are loaded on first use (PEP 562), so that `import reid_hub` and commands that need no model (the
answers of a discovery folder) start without importing torch.
"""
from __future__ import annotations

import logging

from .errors import ReidHubError
from .lazy import lazy_names

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

#: public name -> the module that defines it
_LAZY = {
    "ReIDModel": "models.model", "create_model": "models.model",
    "ModelConfig": "models.configs", "list_models": "models.configs",
    "ModelCard": "models.loading", "from_pretrained": "models.loading", "save_pretrained": "models.loading",
    "push_to_hub": "models.loading", "DEFAULT_MODEL": "resources",
}


__getattr__ = lazy_names(__name__, _LAZY, globals())


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
