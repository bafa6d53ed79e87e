"""Video input: frame decoding and detection tracks (the per-video clustering builds on this)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from .errors import DataError

TRACK_COLUMNS = ("frame", "x", "y", "w", "h")


def read_tracks_csv(path: str | Path) -> pd.DataFrame:
    """Detections table (frame, x, y, w, h[, track, identity, score]) from a simple CSV."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"detections file not found: {path}")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not a readable CSV: {exc}") from exc
    missing = [c for c in TRACK_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{path} lacks the column(s) {missing}")
    if (df[["w", "h"]] <= 0).any().any():
        raise DataError(f"{path}: every box needs a positive width and height")
    df["frame"] = df["frame"].astype(int)
    return df


def iter_frames(path: str | Path, frames: Sequence[int]) -> Iterator[tuple[int, Image.Image]]:
    """Decode the given frame indices (sorted, unique) of a video file as RGB PIL images."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise DataError(f"video not found: {path}")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError(f"cannot open video {path}")
    try:
        wanted = sorted(set(int(f) for f in frames))
        if not wanted:
            return
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        if n is not None and wanted[-1] >= n:
            raise DataError(f"{path} has {n} frames; frame {wanted[-1]} was asked for")
        pos, k = 0, 0
        while k < len(wanted):
            ok, bgr = cap.read()
            if not ok:
                raise DataError(f"{path}: decoding stopped at frame {pos}; frame {wanted[k]} is missing")
            if pos == wanted[k]:
                yield pos, Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1]))
                k += 1
            pos += 1
    finally:
        cap.release()
