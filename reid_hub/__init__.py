"""reid-hub: multi-species animal re-identification models, galleries and services."""
from __future__ import annotations

import logging

from .errors import ReidHubError
from .models.configs import ModelConfig, list_models
from .models.loading import DEFAULT_MODEL, ModelCard, from_pretrained, push_to_hub, save_pretrained
from .models.model import ReIDModel, create_model

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

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
