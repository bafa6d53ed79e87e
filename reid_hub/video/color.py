"""Colour descriptors of detection crops: within one video (one light, one camera) the colours of an
animal are a strong, cheap identity cue that re-ID embeddings, trained with colour jitter, partly drop.

A crop's descriptor is the square root of its normalised HSV histogram (hue x saturation x value bins)
over the central part of the crop (the box edges are mostly background). Grey images fall into the
zero-saturation bins, so the descriptor degrades to a brightness histogram, not to noise.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

HUE_BINS, SAT_BINS, VAL_BINS = 12, 4, 4
COLOR_DIM = HUE_BINS * SAT_BINS * VAL_BINS
CENTRE = 0.8  # share of each side kept around the centre
SIDE = 64  # crops are resized to SIDE x SIDE before counting: every crop weighs the same
VERSION = "hsv12x4x4-c0.8-v1"  # part of the descriptor cache key


def color_histogram(img: Image.Image) -> np.ndarray:
    """The (COLOR_DIM,) float32 unit-norm colour descriptor of one crop."""
    w, h = img.size
    m = (1.0 - CENTRE) / 2
    box = (int(w * m), int(h * m), max(int(w * m) + 1, int(round(w * (1 - m)))),
           max(int(h * m) + 1, int(round(h * (1 - m)))))
    hsv = np.asarray(img.convert("RGB").crop(box).resize((SIDE, SIDE), Image.BILINEAR).convert("HSV"))
    a = hsv.reshape(-1, 3).astype(np.int64)
    idx = ((a[:, 0] * HUE_BINS // 256) * SAT_BINS + a[:, 1] * SAT_BINS // 256) * VAL_BINS + a[:, 2] * VAL_BINS // 256
    counts = np.bincount(idx, minlength=COLOR_DIM).astype(np.float32)
    return np.sqrt(counts / counts.sum())  # sqrt of a distribution: unit norm, cosine = Bhattacharyya


def color_histograms(images: Sequence[Image.Image]) -> np.ndarray:
    """(N, COLOR_DIM) colour descriptors of crops."""
    return np.stack([color_histogram(im) for im in images]) if len(images) else np.zeros((0, COLOR_DIM), np.float32)


def with_color(descriptors: np.ndarray, colors: np.ndarray, weight: float) -> np.ndarray:
    """Clustering descriptors: the unit-norm descriptors beside `weight` times the colour descriptors."""
    d = np.asarray(descriptors, dtype=np.float32)
    d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    c = np.asarray(colors, dtype=np.float32)
    c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
    return np.hstack([d, weight * c])


__all__ = ["COLOR_DIM", "color_histogram", "color_histograms", "with_color"]
