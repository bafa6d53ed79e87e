"""OpenCV SIFT keypoints as RootSIFT, Lowe's ratio test, RANSAC: the classic hand-crafted matcher."""
from __future__ import annotations

from typing import Optional

import numpy as np
from PIL import Image

from .base import LocalFeatures, LocalMatcher, ratio_test


class SiftMatcher(LocalMatcher):
    """SIFT (up to `n_features` keypoints on the image resized to `max_side`, small crops enlarged to
    `min_side`), RootSIFT descriptors (`root`: the Hellinger kernel, Arandjelovic & Zisserman 2012),
    ratio-test matching."""

    name = "sift"

    def __init__(self, max_side: int = 320, n_features: int = 500, ratio: float = 0.75, min_side: int = 256,
                 root: bool = True) -> None:
        import cv2

        cv2.setNumThreads(1)
        self.max_side, self.n_features, self.ratio, self.min_side, self.root = max_side, n_features, ratio, min_side, root
        self._sift = cv2.SIFT_create(nfeatures=n_features)

    def _extract(self, img: Image.Image) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        kp, des = self._sift.detectAndCompute(np.asarray(img.convert("L")), None)
        if not kp or des is None:
            return np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32), None
        if self.root:
            des = np.sqrt(des / (np.abs(des).sum(axis=1, keepdims=True) + 1e-7))
        return np.float32([k.pt for k in kp]), des, np.float32([k.response for k in kp])

    def _correspond(self, a: LocalFeatures, b: LocalFeatures) -> tuple[np.ndarray, np.ndarray]:
        return ratio_test(a.descriptors, b.descriptors, self.ratio)
