"""Where the files that ship with reid-hub are: the released models and the demo's examples.

In an installed wheel they are package data (`reid_hub/model_cards`, `reid_hub/examples`); in a source checkout
(or an editable install) they are the repository's top-level `model_cards/` and `examples/`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

PACKAGE = Path(__file__).resolve().parent

#: The released multi-species model that `from_pretrained()` loads by default.
DEFAULT_MODEL = "multispecies-v2"


def source_checkout() -> Optional[Path]:
    """The repository root when reid_hub runs from a source checkout (None in an installed wheel)."""
    root = PACKAGE.parent
    return root if (root / "pyproject.toml").is_file() and (root / "model_cards").is_dir() else None


def resource_dir(name: str) -> Path:
    """The folder of shipped files `name` (`model_cards` or `examples`): the package's copy, else the checkout's."""
    packaged = PACKAGE / name
    if packaged.is_dir():
        return packaged
    root = source_checkout()
    return (root / name) if root is not None else packaged


def model_cards_dir() -> Path:
    """The released models and the card template ($REID_HUB_MODEL_CARDS overrides)."""
    return Path(os.environ.get("REID_HUB_MODEL_CARDS") or resource_dir("model_cards"))


def examples_dir() -> Path:
    """The demo's shipped data: the fly clip, the fly crops and the demo gallery's definition."""
    return resource_dir("examples")


def cache_dir() -> Path:
    """Where reid-hub writes what it can rebuild ($REID_HUB_CACHE, default ~/.cache/reid-hub)."""
    return Path(os.environ.get("REID_HUB_CACHE") or Path.home() / ".cache" / "reid-hub")


__all__ = ["source_checkout", "resource_dir", "model_cards_dir", "examples_dir", "cache_dir"]
