"""Public checkpoints of other projects, mapped onto `ReIDModel`: timm hub models (`hf-hub:ORG/NAME`,
e.g. MegaDescriptor) and MiewID's own Hugging Face folders (config.json with `model_type: miewid`).

Each format is recognised from its config.json; the weights keep their key layout and are loaded into a
model whose `ModelConfig` says how to run them (backbone, pooling, neck, preprocessing), so a loaded
checkpoint saves and reloads as an ordinary reid-hub model.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from ..data.imaging import PreprocessConfig
from ..errors import ModelMismatchError
from .configs import ModelConfig
from .model import ReIDModel, load_miewid_weights, read_safetensors

log = logging.getLogger(__name__)

#: a function that returns the local path of one file of a checkpoint (a folder lookup or a hub download)
Fetch = Callable[[str], Optional[str]]


def checkpoint_kind(config: dict[str, Any]) -> str:
    """'reid-hub', 'miewid' or 'timm', from the contents of a checkpoint's config.json."""
    if {"backbone", "name", "preprocess"} <= set(config):
        return "reid-hub"
    if config.get("model_type") == "miewid" or "MiewIdNet" in (config.get("architectures") or []):
        return "miewid"
    if "architecture" in config:
        return "timm"
    raise ModelMismatchError("config.json is neither a reid-hub, a MiewID nor a timm model config")


def timm_model_config(config: dict[str, Any], name: str) -> ModelConfig:
    """The reid-hub config of a timm hub model: its own pooled features, no neck, its preprocessing."""
    pre = config.get("pretrained_cfg") or {}
    size = int((pre.get("input_size") or [3, 224, 224])[-1])
    interp = pre.get("interpolation", "bicubic")
    return ModelConfig(
        name=name, backbone=str(config["architecture"]), embedding_dim=None, pooling="backbone", neck=False,
        preprocess=PreprocessConfig(size=size, resize_mode="resize",
                                    interpolation=interp if interp in ("bicubic", "bilinear", "nearest") else "bicubic",
                                    mean=tuple(pre.get("mean", (0.485, 0.456, 0.406))),
                                    std=tuple(pre.get("std", (0.229, 0.224, 0.225))),
                                    crop_pct=float(pre.get("crop_pct", 0.875))),
        description=f"timm hub model {name} (pooled backbone features as embeddings).",
    )


def miewid_model_config(config: dict[str, Any], name: str) -> ModelConfig:
    """The reid-hub config of a MiewID checkpoint (GeM + BN neck over an EfficientNetV2, 440 px)."""
    if config.get("use_fc"):
        raise ModelMismatchError(f"{name}: MiewID checkpoints with use_fc=true (a biased projection) are not "
                                 "supported; the released MiewID models use use_fc=false")
    if not config.get("model_name"):
        raise ModelMismatchError(f"{name}: MiewID config.json has no model_name (the timm backbone)")
    return ModelConfig(
        name=name, backbone=str(config["model_name"]), embedding_dim=None,
        preprocess=PreprocessConfig(size=440, resize_mode="resize", interpolation="bilinear"),
        description=f"MiewID checkpoint {name}.",
    )


def _weights(fetch: Fetch, name: str) -> dict[str, torch.Tensor]:
    for file in ("model.safetensors", "pytorch_model.bin"):
        path = fetch(file)
        if path:
            if file.endswith(".safetensors"):
                return read_safetensors(path)
            try:
                return torch.load(path, map_location="cpu", weights_only=True)
            except (RuntimeError, OSError, EOFError, ValueError) as exc:
                raise ModelMismatchError(f"{path} is not a readable checkpoint (truncated or corrupt?): {exc}") from exc
    raise ModelMismatchError(f"{name}: neither model.safetensors nor pytorch_model.bin found")


def load_foreign(config: dict[str, Any], fetch: Fetch, name: str) -> ReIDModel:
    """Build and load a timm or MiewID checkpoint whose config.json is `config`."""
    kind = checkpoint_kind(config)
    state = _weights(fetch, name)
    if kind == "miewid":
        model = ReIDModel(miewid_model_config(config, name))
        return load_miewid_weights(model, state)
    if kind != "timm":
        raise ModelMismatchError(f"{name}: a {kind} checkpoint is not a foreign format")
    model = ReIDModel(timm_model_config(config, name))
    classifier = (config.get("pretrained_cfg") or {}).get("classifier") or "head"
    own = set(model.backbone.state_dict())
    dropped = [k for k in state if k not in own and k.startswith(classifier)]
    state = {f"backbone.{k}": v for k, v in state.items() if k not in dropped}
    log.info("%s: timm checkpoint, %d tensors (classifier %s dropped: %d)", name, len(state), classifier, len(dropped))
    model.load_weights(state)
    return model


def folder_fetch(folder: str | Path) -> Fetch:
    """A Fetch over a local checkpoint folder."""
    def fetch(file: str) -> Optional[str]:
        p = Path(folder) / file
        return str(p) if p.is_file() else None
    return fetch


def read_config(path: str | Path) -> dict[str, Any]:
    """A config.json as a dict; unreadable JSON is a ModelMismatchError."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelMismatchError(f"{path} is not a readable config.json: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelMismatchError(f"{path} does not hold a JSON object")
    return data


__all__ = ["checkpoint_kind", "timm_model_config", "miewid_model_config", "load_foreign", "folder_fetch",
           "read_config"]
