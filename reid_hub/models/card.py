"""Model cards: what a card says beyond the config, and the one template (model_cards/TEMPLATE.md) they are
rendered from. `ReIDModel.generate_model_card` (the huggingface_hub mixin's card hook) renders it, so every save
path writes the same card."""
from __future__ import annotations

import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..errors import ConfigError
from ..resources import model_cards_dir

CARD_TEMPLATE = "TEMPLATE.md"


@dataclass
class ModelCard:
    """What a model card says beyond the config: data, metrics, intended use, limitations."""

    title: str = ""
    summary: str = ""
    license: str = "other"
    training_data: list[dict[str, str]] = field(default_factory=list)  # name, species, images, identities, license, source
    metrics: list[dict[str, Any]] = field(default_factory=list)  # rows: species, method, top1, top5, mAP ...
    metrics_note: str = ""
    training: str = ""
    intended_use: str = ("Re-identifying individual animals of the trained species (and, with lower accuracy, "
                         "related species) from cropped photos or video detections, as a ranking aid that a "
                         "person verifies.")
    limitations: str = ""
    citation: str = ""


def render_card(model: Any, card: ModelCard, template: Optional[str | Path] = None) -> str:
    """The README.md model card of `model`, rendered from model_cards/TEMPLATE.md."""
    path = Path(template) if template else model_cards_dir() / CARD_TEMPLATE
    if not path.is_file():
        raise ConfigError(f"model card template not found at {path}")
    cfg = model.config
    values = {
        "name": cfg.name,
        "title": card.title or cfg.name,
        "summary": card.summary or cfg.description,
        "license": card.license,
        "backbone": cfg.backbone,
        "embedding_dim": str(model.embedding_dim),
        "input_size": str(cfg.preprocess.size),
        "resize_mode": cfg.preprocess.resize_mode,
        "pooling": cfg.pooling,
        "parameters": f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M",
        "fingerprint": model.fingerprint(),
        "species_tags": "\n".join(f"- {s}" for s in sorted({d.get('species', '') for d in card.training_data} - {''})),
        "training_data": _table(card.training_data, ["name", "species", "images", "identities", "license", "source"])
        or "Not trained on identity data (ImageNet initialisation only).",
        "metrics": _table(card.metrics, None) or "No metrics recorded.",
        "metrics_note": card.metrics_note,
        "training": card.training or "n/a",
        "intended_use": card.intended_use,
        "limitations": card.limitations or "Not evaluated.",
        "citation": card.citation,
    }
    return string.Template(path.read_text()).safe_substitute(values)


def _table(rows: list[dict[str, Any]], columns: Optional[list[str]]) -> str:
    if not rows:
        return ""
    cols = columns or list(dict.fromkeys(k for r in rows for k in r))

    def fmt(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


__all__ = ["ModelCard", "render_card", "CARD_TEMPLATE"]
