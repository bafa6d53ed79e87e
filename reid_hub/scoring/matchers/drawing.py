"""The evidence picture: query and candidate side by side with their verified matches drawn."""
from __future__ import annotations

import io
from typing import Optional

import numpy as np
from PIL import Image, ImageDraw

from .base import LocalFeatures, PairMatch


def draw_matches(img0: Image.Image, img1: Image.Image, f0: LocalFeatures, f1: LocalFeatures, match: PairMatch,
                 height: int = 320, caption: Optional[str] = None, show_outliers: bool = True) -> Image.Image:
    """Both images scaled to `height` (no wider than 4 x `height`: a 50,000 x 1 upload must not make a
    16-megapixel-wide canvas), side by side; RANSAC inliers as green lines, other tentative matches as thin red
    ones; an optional caption strip below."""
    a, b = _fit(img0.convert("RGB"), height, 4 * height), _fit(img1.convert("RGB"), height, 4 * height)
    strip = 22 if caption else 0
    canvas = Image.new("RGB", (a.width + b.width + 8, height + strip), (255, 255, 255))
    canvas.paste(a, (0, 0))
    canvas.paste(b, (a.width + 8, 0))
    draw = ImageDraw.Draw(canvas)
    # keypoints are in the pixels of the images given to extract, which may differ from img0/img1
    ka = f0.keypoints * np.array([a.width / f0.image_size[0], a.height / f0.image_size[1]])
    kb = f1.keypoints * np.array([b.width / f1.image_size[0], b.height / f1.image_size[1]])
    for i0, i1, ok in zip(match.idx0, match.idx1, match.inliers):
        if not ok and not show_outliers:
            continue
        (x0, y0), (x1, y1) = ka[i0], kb[i1]
        x1 += a.width + 8
        draw.line([(x0, y0), (x1, y1)], fill=(40, 200, 60) if ok else (220, 60, 60), width=2 if ok else 1)
        if ok:
            for x, y in ((x0, y0), (x1, y1)):
                draw.ellipse([x - 2.5, y - 2.5, x + 2.5, y + 2.5], outline=(40, 200, 60))
    if caption:
        draw.text((6, height + 4), caption, fill=(0, 0, 0))
    return canvas


def _fit(img: Image.Image, height: int, max_width: int) -> Image.Image:
    """`img` scaled to `height`, or less where that would make it wider than `max_width`."""
    scale = min(height / img.height, max_width / img.width)
    return img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
