"""Pseudo-videos from identity-labelled photos, for evaluating video clustering where no real
video with identities exists: K individuals, T frames, each frame shows one photo of each visible
individual (the box is the photo itself, placed in a shuffled grid slot)."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from PIL import Image, ImageEnhance

from ..errors import DataError


def augment(img: Image.Image, rng: np.random.Generator, min_scale: float = 0.85) -> Image.Image:
    """A frame-to-frame variation of a photo: a random crop of min_scale..1 of each side and +-10% brightness."""
    w, h = img.size
    s = rng.uniform(min_scale, 1.0)
    cw, ch = max(1, int(w * s)), max(1, int(h * s))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    out = img.crop((x0, y0, x0 + cw, y0 + ch))
    return ImageEnhance.Brightness(out).enhance(float(rng.uniform(0.9, 1.1)))


def make_pseudo_video(photos: Mapping[str, Sequence[int]], k: int, n_frames: int, variants: int = 1,
                      visibility: float = 1.0, slot_size: int = 256, seed: int = 0) -> pd.DataFrame:
    """Detections of a pseudo-video: k identities drawn from `photos` (identity -> photo row ids),
    n_frames frames; each visible individual (probability `visibility`, at least one per frame) shows a
    random photo in a random variant. Columns: frame, x, y, w, h, score, track, identity, photo, variant."""
    eligible = [i for i, p in photos.items() if len(p) >= 1]
    if k > len(eligible):
        raise DataError(f"k={k} individuals asked for, only {len(eligible)} identities available")
    rng = np.random.default_rng(seed)
    chosen = [eligible[i] for i in rng.choice(len(eligible), k, replace=False)]
    cols = int(np.ceil(np.sqrt(k)))
    rows = []
    for f in range(n_frames):
        visible = rng.random(k) < visibility
        if not visible.any():
            visible[rng.integers(k)] = True
        slots = rng.permutation(k)
        for j in np.flatnonzero(visible):
            ident = chosen[j]
            photo = int(rng.choice(photos[ident]))
            s = int(slots[j])
            rows.append((f, float((s % cols) * slot_size), float((s // cols) * slot_size), float(slot_size - 8),
                         float(slot_size - 8), 1.0, -1, ident, photo, int(rng.integers(variants))))
    return pd.DataFrame(rows, columns=["frame", "x", "y", "w", "h", "score", "track", "identity", "photo", "variant"])
