"""The matcher interface: features of one image, a matched pair, geometric verification."""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from ...errors import DataError


@dataclass
class LocalFeatures:
    """Keypoints (n, 2; x, y in pixels of the image given to `extract`) and their descriptors (n, d)."""

    keypoints: np.ndarray
    descriptors: np.ndarray
    image_size: tuple[int, int]  # (width, height) of the image given to extract
    scores: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.keypoints)

    def to_bytes(self) -> bytes:
        """Compact serialisation (float16 descriptors) for storage beside a gallery image."""
        buf = io.BytesIO()
        np.savez(buf, keypoints=self.keypoints.astype(np.float32), descriptors=self.descriptors.astype(np.float16),
                 image_size=np.asarray(self.image_size, np.int32),
                 scores=np.zeros(0, np.float32) if self.scores is None else self.scores.astype(np.float32))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> "LocalFeatures":
        try:
            z = np.load(io.BytesIO(blob))
            scores = z["scores"]
            return cls(z["keypoints"], z["descriptors"].astype(np.float32), tuple(int(v) for v in z["image_size"]),
                       scores if len(scores) else None)
        except (ValueError, KeyError, OSError) as exc:
            raise DataError(f"stored local features are unreadable: {exc}") from exc


@dataclass
class PairMatch:
    """Tentative correspondences idx0[i] <-> idx1[i] and which of them survive RANSAC."""

    idx0: np.ndarray
    idx1: np.ndarray
    inliers: np.ndarray  # bool, one per correspondence

    @property
    def score(self) -> float:
        """Verified matches, ties broken by the tentative count."""
        return float(self.inliers.sum()) + 1e-3 * len(self.idx0)

    @classmethod
    def empty(cls) -> "PairMatch":
        z = np.zeros(0, np.int64)
        return cls(z, z, np.zeros(0, bool))


def ransac_inliers(pts0: np.ndarray, pts1: np.ndarray, threshold: float) -> np.ndarray:
    """Inlier mask of correspondences under a RANSAC homography (none below 4 correspondences). OpenCV's
    USAC (local optimisation, early stopping) finds the same inliers as classic RANSAC ~15x faster."""
    import cv2

    if len(pts0) < 4:
        return np.zeros(len(pts0), bool)
    _, mask = cv2.findHomography(np.float32(pts0), np.float32(pts1), cv2.USAC_DEFAULT, float(threshold),
                                 maxIters=1000, confidence=0.99)
    return np.zeros(len(pts0), bool) if mask is None else mask.ravel().astype(bool)


class LocalMatcher:
    """Base class: subclasses implement `_extract` (a resized RGB image) and `_correspond`."""

    name = "base"
    #: images are resized so that their longer side is at most this many pixels before extraction
    max_side = 320
    #: images whose shorter side is below this are enlarged to it first (0: never enlarge)
    min_side = 0
    #: RANSAC reprojection threshold as a share of the longer side of the first image
    ransac_fraction = 0.025

    def extract(self, image: Image.Image) -> LocalFeatures:
        """Keypoints and descriptors of one image (keypoints in its own pixel coordinates)."""
        if not isinstance(image, Image.Image):
            raise DataError(f"extract needs a PIL image, got {type(image).__name__}")
        img = image.convert("RGB")
        w, h = img.size
        s = min(1.0, self.max_side / max(w, h))
        if self.min_side and min(w, h) * s < self.min_side:  # small crops are enlarged: more, finer keypoints
            s = min(self.min_side / min(w, h), 2 * self.max_side / max(w, h))
        if s != 1:
            img = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BICUBIC if s > 1 else Image.BILINEAR)
        kp, desc, scores = self._extract(img)
        return LocalFeatures(np.asarray(kp, np.float32).reshape(-1, 2) / s, np.asarray(desc, np.float32),
                             (w, h), None if scores is None else np.asarray(scores, np.float32))

    def extract_many(self, images: Sequence[Image.Image]) -> list[LocalFeatures]:
        return [self.extract(im) for im in images]

    def match(self, a: LocalFeatures, b: LocalFeatures) -> PairMatch:
        """Tentative correspondences of two images, verified by RANSAC."""
        if len(a) < 2 or len(b) < 2:
            return PairMatch.empty()
        i0, i1 = self._correspond(a, b)
        i0, i1 = np.asarray(i0, np.int64), np.asarray(i1, np.int64)
        thr = self.ransac_fraction * max(a.image_size)
        return PairMatch(i0, i1, ransac_inliers(a.keypoints[i0], b.keypoints[i1], thr))

    def _extract(self, img: Image.Image) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        raise NotImplementedError

    def _correspond(self, a: LocalFeatures, b: LocalFeatures) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


def mutual_nearest(d0: np.ndarray, d1: np.ndarray, min_similarity: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Mutual nearest neighbours of two sets of unit descriptors (cosine above `min_similarity`)."""
    sim = d0 @ d1.T
    fwd = sim.argmax(axis=1)
    back = sim.argmax(axis=0)
    i0 = np.flatnonzero(back[fwd] == np.arange(len(d0)))
    i1 = fwd[i0]
    keep = sim[i0, i1] > min_similarity
    return i0[keep], i1[keep]


def ratio_test(d0: np.ndarray, d1: np.ndarray, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Lowe's ratio test on Euclidean distances: nearest neighbour kept when clearly closer than the second."""
    if len(d0) == 0 or len(d1) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    d0, d1 = np.asarray(d0, np.float32), np.asarray(d1, np.float32)
    d2 = (d1 * d1).sum(1)[None, :] - 2 * (d0 @ d1.T)  # squared distance minus each row's constant |d0|^2
    rows = np.arange(len(d0))
    best = d2.argmin(axis=1)
    first = d2[rows, best].copy()
    d2[rows, best] = np.inf
    second = d2.min(axis=1)
    norm0 = (d0 * d0).sum(1)
    dist1, dist2 = np.sqrt(np.maximum(first + norm0, 0)), np.sqrt(np.maximum(second + norm0, 0))
    keep = dist1 < ratio * dist2
    return np.flatnonzero(keep), best[keep]
