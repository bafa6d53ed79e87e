"""Hugging Face style I/O: save_pretrained / from_pretrained / push_to_hub with a model card.

A saved model is a folder with config.json, model.safetensors and README.md (the card).
Released models ship in model_cards/<name>/ (package data of the wheel) and load by name, offline.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

import torch

from ..data.atomic import atomic_folder
from ..errors import ConfigError, ModelMismatchError, OfflineError, UnknownModelError
from ..resources import DEFAULT_MODEL, model_cards_dir
from .card import ModelCard
from .configs import ALIASES, ModelConfig, get_model_config, list_models
from .foreign import Fetch, checkpoint_kind, folder_fetch, load_foreign, read_config
from .model import ReIDModel

log = logging.getLogger(__name__)

#: prefix of timm hub model ids (timm.create_model("hf-hub:...") convention)
TIMM_HUB_PREFIX = "hf-hub:"


def release_names() -> list[str]:
    """Names of the models released in model_cards/."""
    cards = model_cards_dir()
    if not cards.is_dir():
        return []
    return sorted(p.name for p in cards.iterdir() if (p / "config.json").is_file())


def model_table() -> list[dict[str, Any]]:
    """Every model `from_pretrained` and `create_model` know, one row each: released models (weights shipped,
    offline) first, then registered configs (architectures; weights: ImageNet backbone or none)."""
    rows = []
    for name in release_names():
        folder = model_cards_dir() / name
        cfg = ModelConfig.from_dict(json.loads((folder / "config.json").read_text()))
        rows.append({"name": name + (" (default)" if name == DEFAULT_MODEL else ""), "kind": "released", "alias": "",
                     "backbone": cfg.backbone, "input": f"{cfg.preprocess.size}px",
                     "weights": f"{(folder / 'model.safetensors').stat().st_size / 2**20:.1f} MiB",
                     "description": cfg.description})
    for name in list_models():
        cfg = get_model_config(name)
        aliases = ", ".join(a for a, n in sorted(ALIASES.items()) if n == name)
        rows.append({"name": name, "kind": "config", "alias": aliases, "backbone": cfg.backbone,
                     "input": f"{cfg.preprocess.size}px",
                     "weights": "ImageNet backbone" if cfg.imagenet_weights else "random",
                     "description": cfg.description})
    return rows


def resolve(name_or_path: str | Path) -> str:
    """The local folder or hub id that `name_or_path` names (`hf-hub:ORG/NAME` for timm hub models)."""
    p = Path(name_or_path)
    if p.is_dir():
        return str(p)
    released = model_cards_dir() / str(name_or_path)
    if (released / "config.json").is_file():
        return str(released)
    text = str(name_or_path)
    hub_id = text[len(TIMM_HUB_PREFIX):] if text.startswith(TIMM_HUB_PREFIX) else text
    if hub_id.count("/") == 1 and not hub_id.startswith((".", "/")) and not p.exists():
        return text  # a Hugging Face hub id
    raise UnknownModelError(
        f"{text!r} is neither a model folder, a released model ({', '.join(release_names()) or 'none'}) "
        "nor a hub id (org/name)"
    )


def _hub_fetch(repo_id: str, offline: bool) -> Fetch:
    """A Fetch that downloads one file of a hub repository (None when the repository lacks it)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import EntryNotFoundError, LocalEntryNotFoundError

    def fetch(file: str) -> Optional[str]:
        try:
            return hf_hub_download(repo_id=repo_id, filename=file, local_files_only=offline)
        except LocalEntryNotFoundError as exc:  # offline, or not in the local cache
            raise OfflineError(f"cannot fetch {file} of {repo_id!r}: not in the local Hugging Face cache and the "
                               "hub is not reachable (offline); pass a local folder or a released name") from exc
        except EntryNotFoundError:  # the repository has no such file
            return None
        except Exception as exc:  # huggingface_hub raises many network error types
            raise OfflineError(
                f"cannot fetch {file} of {repo_id!r} from the Hugging Face hub ({type(exc).__name__}: {exc}); "
                "without network, pass a local folder or a released name"
            ) from exc
    return fetch


def from_pretrained(name_or_path: str | Path = DEFAULT_MODEL, device: Optional[str | torch.device] = None,
                    local_files_only: Optional[bool] = None) -> ReIDModel:
    """Load a model: a reid-hub folder, a released name (offline), a Hugging Face hub id (online), a
    timm hub model as `hf-hub:ORG/NAME` (e.g. MegaDescriptor), or a MiewID checkpoint (folder or hub id,
    its own config.json is mapped)."""
    target = resolve(name_or_path)
    if os.path.isdir(target):
        fetch = folder_fetch(target)
        name = Path(target).name
    else:
        offline = local_files_only if local_files_only is not None else _hf_offline()
        name = target[len(TIMM_HUB_PREFIX):] if target.startswith(TIMM_HUB_PREFIX) else target
        fetch = _hub_fetch(name, offline)
    cfg_file = fetch("config.json")
    if not cfg_file:
        raise ModelMismatchError(f"{target}: no config.json")
    config = read_config(cfg_file)
    if checkpoint_kind(config) == "reid-hub":
        if not fetch("model.safetensors"):  # a hub download lands beside config.json
            raise ModelMismatchError(f"{target}: model.safetensors is missing")
        model = ReIDModel.from_pretrained(str(Path(cfg_file).parent))
    else:
        model = load_foreign(config, fetch, name)
    model.eval()
    if device is not None:
        model.to(device)
    return model


def _hf_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def save_pretrained(model: ReIDModel, save_directory: str | Path, card: Optional[ModelCard] = None,
                    dtype: str = "float32", template: Optional[str | Path] = None) -> Path:
    """Write config.json, model.safetensors and README.md to `save_directory`, atomically.

    dtype="float16" halves the file; the saved model is then exactly the fp16-rounded one.
    """
    if dtype not in ("float32", "float16", "bfloat16"):
        raise ConfigError(f"dtype must be float32, float16 or bfloat16, got {dtype!r}")
    target = Path(save_directory)
    try:
        with atomic_folder(target) as tmp:
            model.save_dtype = None if dtype == "float32" else getattr(torch, dtype)
            if dtype != "float32":  # the card's fingerprint must describe the rounded weights
                rounded = {k: v.to(model.save_dtype).to(v.dtype) if v.is_floating_point() else v
                           for k, v in model.state_dict().items()}
                model.load_state_dict(rounded)
            model.save_pretrained(tmp, model_card_kwargs={"card": card, "template": template})  # generate_model_card
    finally:
        model.save_dtype = None
    log.info("saved %s to %s", model.config.name, target)
    return target


def push_to_hub(model: ReIDModel, repo_id: str, card: Optional[ModelCard] = None, dtype: str = "float32",
                private: bool = False, token: Optional[str] = None) -> str:
    """Save `model` with its card and upload the folder to the Hugging Face hub; returns the commit URL."""
    from huggingface_hub import HfApi

    if _hf_offline():
        raise OfflineError("HF_HUB_OFFLINE is set: cannot push to the hub")
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_pretrained(model, Path(tmp) / "model", card=card, dtype=dtype)
        try:
            api = HfApi(token=token)
            api.create_repo(repo_id, private=private, exist_ok=True)
            info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message="Upload reid-hub model")
        except Exception as exc:
            raise OfflineError(f"pushing to {repo_id!r} failed ({type(exc).__name__}: {exc})") from exc
    return str(getattr(info, "commit_url", info))


__all__ = ["ModelCard", "DEFAULT_MODEL", "from_pretrained", "save_pretrained", "push_to_hub",
           "release_names", "resolve", "model_table"]
