"""Image loading and the deterministic preprocessing that belongs to a model's config."""
from __future__ import annotations

import io
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .atomic import atomic_path
from ..errors import ConfigError, ImageError

ImageLike = Union[str, Path, bytes, Image.Image, np.ndarray, torch.Tensor]

#: Largest image (in pixels) reid-hub decodes; larger files are refused as decompression bombs.
MAX_IMAGE_PIXELS = 64_000_000

_RESAMPLE = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST}
RESIZE_MODES = ("letterbox", "resize", "center_crop")


@dataclass
class PreprocessConfig:
    """How an RGB image becomes a model input: size, resize mode, interpolation, mean/std."""

    size: int = 224
    resize_mode: str = "letterbox"
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    crop_pct: float = 0.875
    fill: tuple[int, int, int] = (0, 0, 0)

    def __post_init__(self) -> None:
        if self.resize_mode not in RESIZE_MODES:
            raise ConfigError(f"resize_mode must be one of {RESIZE_MODES}, got {self.resize_mode!r}")
        if self.interpolation not in _RESAMPLE:
            raise ConfigError(f"interpolation must be one of {tuple(_RESAMPLE)}, got {self.interpolation!r}")
        if not 16 <= int(self.size) <= 2048:
            raise ConfigError(f"input size must be in [16, 2048], got {self.size}")
        self.size = int(self.size)
        self.mean = tuple(float(v) for v in self.mean)  # type: ignore[assignment]
        self.std = tuple(float(v) for v in self.std)  # type: ignore[assignment]
        self.fill = tuple(int(v) for v in self.fill)  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_image(source: ImageLike) -> Image.Image:
    """Return `source` (path, bytes, PIL image, HWC/CHW uint8 array or tensor) as an RGB PIL image.

    Raises ImageError for missing, corrupt, oversized or wrongly shaped input.
    """
    if isinstance(source, Image.Image):
        img = source
    elif isinstance(source, (str, Path, bytes)):
        img = _open(source)
    elif isinstance(source, (np.ndarray, torch.Tensor)):
        img = _from_array(source)
    else:
        raise ImageError(f"cannot read an image from a {type(source).__name__}")
    try:
        if img.mode != "RGB":
            img = img.convert("RGB")
    except (OSError, ValueError) as exc:
        raise ImageError(f"cannot convert image of mode {img.mode} to RGB: {exc}") from exc
    return img


def _open(source: str | Path | bytes) -> Image.Image:
    name = "<bytes>" if isinstance(source, bytes) else str(source)
    fp: Any = io.BytesIO(source) if isinstance(source, bytes) else source
    if not isinstance(source, bytes) and not Path(source).is_file():
        raise ImageError(f"image file not found: {name}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fp) as raw:
                if raw.width * raw.height > MAX_IMAGE_PIXELS:
                    raise ImageError(
                        f"image {name} has {raw.width}x{raw.height} pixels, more than {MAX_IMAGE_PIXELS}"
                    )
                raw.load()
                img = ImageOps.exif_transpose(raw) or raw
                return img.copy() if img is raw else img
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"not a readable image: {name} ({exc})") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"corrupt or truncated image: {name} ({exc})") from exc


def _from_array(arr: np.ndarray | torch.Tensor) -> Image.Image:
    a = arr.detach().cpu().numpy() if isinstance(arr, torch.Tensor) else np.asarray(arr)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = np.transpose(a, (1, 2, 0))
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] != 3):
        raise ImageError(f"an image array must be HxW, HxWx3 or 3xHxW, got shape {tuple(a.shape)}")
    if a.dtype != np.uint8:
        if np.issubdtype(a.dtype, np.floating) and a.size and 0.0 <= float(a.min()) and float(a.max()) <= 1.0:
            a = np.round(a * 255.0)
        a = np.clip(a, 0, 255).astype(np.uint8)
    return Image.fromarray(a)


def resize_for_model(img: Image.Image, cfg: PreprocessConfig) -> Image.Image:
    """Resize an RGB image to cfg.size x cfg.size following cfg.resize_mode."""
    size, resample = cfg.size, _RESAMPLE[cfg.interpolation]
    if cfg.resize_mode == "resize":
        return img.resize((size, size), resample)
    if cfg.resize_mode == "center_crop":
        # the central square that a resize of the short side to size / crop_pct and a centre crop would keep,
        # resampled straight from the original: scaling the whole image first would make a 50,000 x 1 upload a
        # 12.8-megapixel-wide intermediate
        scaled = size / cfg.crop_pct
        w, h = img.size
        side = min(w, h) * size / scaled
        left, top = (w - side) / 2, (h - side) / 2
        return img.resize((size, size), resample, box=(left, top, left + side, top + side))
    w, h = img.size
    s = size / max(w, h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    canvas = Image.new("RGB", (size, size), cfg.fill)
    canvas.paste(img.resize((nw, nh), resample), ((size - nw) // 2, (size - nh) // 2))
    return canvas


def to_tensor(img: Image.Image, cfg: PreprocessConfig) -> torch.Tensor:
    """Normalize an already resized RGB image to a float32 CHW tensor."""
    x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255.0)
    mean = torch.tensor(cfg.mean).view(3, 1, 1)
    std = torch.tensor(cfg.std).view(3, 1, 1)
    return (x - mean) / std


def preprocess(source: ImageLike, cfg: PreprocessConfig) -> torch.Tensor:
    """Load, resize and normalize one image into the model's CHW input tensor."""
    return to_tensor(resize_for_model(load_image(source), cfg), cfg)


def crop_box(img: Image.Image, box: tuple[float, float, float, float], pad: float = 0.0) -> Image.Image:
    """Cut box (x, y, w, h in pixels) grown by `pad` (share of each side) and clipped to the image."""
    x, y, w, h = (float(v) for v in box)
    if not (w > 0 and h > 0):
        raise ImageError(f"box must have positive width and height, got {box}")
    x0, y0 = max(0.0, x - pad * w), max(0.0, y - pad * h)
    x1, y1 = min(float(img.width), x + w + pad * w), min(float(img.height), y + h + pad * h)
    if x1 - x0 < 1 or y1 - y0 < 1:
        raise ImageError(f"box {box} lies outside the {img.width}x{img.height} image")
    return img.crop((int(x0), int(y0), int(np.ceil(x1)), int(np.ceil(y1))))


__all__ = [
    "ImageLike",
    "PreprocessConfig",
    "load_image",
    "preprocess",
    "resize_for_model",
    "to_tensor",
    "crop_box",
    "MAX_IMAGE_PIXELS",
    "save_jpeg",
]


def save_jpeg(img: Image.Image, path: str | Path, max_side: int, quality: int = 85) -> Path:
    """Write `img` as an RGB JPEG no larger than `max_side` on either side, atomically (temp file + rename)."""
    path = Path(path)
    small = img.convert("RGB").copy()
    small.thumbnail((max_side, max_side))
    with atomic_path(path) as tmp:
        small.save(tmp, format="JPEG", quality=quality)
    return path

