"""Detections of one video in any of the common formats, as one table; box IoU and IoU tracklets.

The table has one row per detection, sorted by frame: frame (0-based), x, y, w, h (pixels, top-left
corner), score, track (-1 when the source has none) and, when the source carries it, identity.
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from ..data.boxes import box_iou
from ..data.union_find import UnionFind
from ..errors import ConfigError, DataError

log = logging.getLogger(__name__)

FORMATS = ("auto", "megadetector", "mot", "coco", "csv")
COLUMNS = ["frame", "x", "y", "w", "h", "score", "track"]


def _frame_number(name: str) -> Optional[int]:
    digits = re.findall(r"\d+", Path(str(name)).stem)
    return int(digits[-1]) if digits else None


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not valid JSON: {exc}") from exc


def _sniff(path: Path, data: Any) -> str:
    """The format of a detections file; `data` is its parsed JSON (None for text files)."""
    if data is not None:
        if isinstance(data, dict) and "annotations" in data and "images" in data:
            return "coco"
        if isinstance(data, dict) and "images" in data:
            return "megadetector"
        raise DataError(f"{path}: JSON that is neither MegaDetector batch output nor COCO")
    with open(path, errors="replace") as fh:
        head = next((line.strip() for line in fh if line.strip()), "")
    if re.match(r"^-?\d", head) and len(head.split(",")) >= 6:
        return "mot"
    return "csv"


def _read_megadetector(path: Path, data: dict, frame_size: Optional[tuple[int, int]], categories: tuple[str, ...]) -> pd.DataFrame:
    names = {str(k): str(v) for k, v in (data.get("detection_categories") or {"1": "animal"}).items()}
    keep = {k for k, v in names.items() if v in categories or k in categories}
    rows = []
    for order, im in enumerate(data.get("images") or []):
        if im.get("failure"):
            log.warning("MegaDetector could not read %s (%s); skipped", im.get("file"), im["failure"])
            continue
        frame = im.get("frame_number", im.get("frame"))
        frame = int(frame) if frame is not None else _frame_number(im.get("file", ""))
        if frame is None:
            frame = order
        for det in im.get("detections") or []:
            if str(det.get("category")) not in keep:
                continue
            bbox = det.get("bbox")
            if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
                raise DataError(f"{path}: a detection of {im.get('file')} has no [x, y, w, h] bbox")
            rows.append((frame, *map(float, bbox), float(det.get("conf", 1.0)), -1))
    df = pd.DataFrame(rows, columns=COLUMNS)
    if len(df):
        if frame_size is None:
            raise ConfigError("MegaDetector boxes are relative to the frame: the frame size is needed")
        w, h = frame_size
        df[["x", "w"]] *= w
        df[["y", "h"]] *= h
    return df


def _read_mot(path: Path) -> pd.DataFrame:
    try:
        raw = pd.read_csv(path, header=None)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not a readable MOT file: {exc}") from exc
    if raw.shape[1] < 6:
        raise DataError(f"{path}: MOT rows need frame,id,x,y,w,h[,conf,...]")
    conf = raw[6].astype(float) if raw.shape[1] > 6 else pd.Series(1.0, index=raw.index)
    df = pd.DataFrame({"frame": raw[0].astype(int) - 1, "x": raw[2].astype(float), "y": raw[3].astype(float),
                       "w": raw[4].astype(float), "h": raw[5].astype(float), "score": conf.where(conf >= 0, 1.0),
                       "track": raw[1].astype(int)})
    return df


def _read_coco(path: Path, data: dict, categories: tuple[str, ...]) -> pd.DataFrame:
    cats = {c["id"]: str(c.get("name", c["id"])) for c in data.get("categories") or []}
    images = sorted(data["images"], key=lambda im: im["id"])
    frame_of = {}
    for order, im in enumerate(images):
        f = im.get("frame_index", im.get("frame_id"))
        f = int(f) if f is not None else _frame_number(im.get("file_name", ""))
        frame_of[im["id"]] = order if f is None else f
    rows = []
    for a in data["annotations"]:
        cid = a.get("category_id")
        if cats and categories and "any" not in categories and cats.get(cid) not in categories \
                and cid not in categories:
            continue
        if a.get("image_id") not in frame_of:
            raise DataError(f"{path}: annotation {a.get('id')} refers to the unknown image {a.get('image_id')}")
        x, y, w, h = map(float, a["bbox"])
        track = a.get("track_id", a.get("instance_id", -1))
        rows.append((frame_of[a["image_id"]], x, y, w, h, float(a.get("score", 1.0)), int(track), a.get("identity")))
    df = pd.DataFrame(rows, columns=COLUMNS + ["identity"])
    if df["identity"].isna().all():
        df = df.drop(columns="identity")
    return df


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not a readable CSV: {exc}") from exc
    missing = [c for c in ("frame", "x", "y", "w", "h") if c not in df.columns]
    if missing:
        raise DataError(f"{path} lacks the column(s) {missing} (need frame,x,y,w,h[,score,track,identity])")
    if "score" not in df.columns:
        df["score"] = 1.0
    if "track" not in df.columns:
        df["track"] = -1
    return df


def read_detections(path: str | Path, fmt: str = "auto", min_score: float = 0.5,
                    frame_size: Optional[tuple[int, int]] = None, n_frames: Optional[int] = None,
                    categories: tuple[str, ...] = ("animal",)) -> pd.DataFrame:
    """The detections of `path` (MegaDetector JSON, MOT txt, COCO JSON or CSV) with score >= min_score.

    With `frame_size` (width, height), boxes are clipped to the frame and boxes wholly outside it
    are an error; with `n_frames`, detections past the last frame are an error.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise ConfigError(f"unknown detections format {fmt!r}; one of {FORMATS}")
    if not path.is_file():
        raise DataError(f"detections file not found: {path}")
    is_json = fmt in ("megadetector", "coco") or (fmt == "auto" and path.suffix.lower() == ".json")
    data = _load_json(path) if is_json else None  # parsed once, for sniffing and reading
    if fmt == "auto":
        fmt = _sniff(path, data)
    try:
        if fmt == "megadetector":
            df = _read_megadetector(path, data, frame_size, categories)
        elif fmt == "mot":
            df = _read_mot(path)
        elif fmt == "coco":
            df = _read_coco(path, data, categories)
        else:
            df = _read_csv(path)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, (DataError, ConfigError)):
            raise
        raise DataError(f"{path} is not valid {fmt} detections: {exc!r}") from exc
    return clean_detections(df, min_score=min_score, frame_size=frame_size, n_frames=n_frames, source=str(path))


def read_tracks_csv(path: str | Path) -> pd.DataFrame:
    """Every row of a simple detections CSV (frame, x, y, w, h[, score, track, identity]), sorted by frame."""
    return read_detections(path, fmt="csv", min_score=float("-inf"))


def clean_detections(df: pd.DataFrame, min_score: float = 0.0, frame_size: Optional[tuple[int, int]] = None,
                     n_frames: Optional[int] = None, source: str = "detections") -> pd.DataFrame:
    """Validate a detections table, drop low scores, clip boxes to the frame, sort by frame."""
    for c in ("frame", "x", "y", "w", "h"):
        if c not in df.columns:
            raise DataError(f"{source}: missing column {c!r}")
    df = df.copy()
    if "score" not in df.columns:
        df["score"] = 1.0
    if "track" not in df.columns:
        df["track"] = -1
    num = df[["frame", "x", "y", "w", "h", "score"]].apply(pd.to_numeric, errors="coerce")
    if num.isna().any().any():
        raise DataError(f"{source}: non-numeric or empty values in frame/x/y/w/h/score")
    df[["x", "y", "w", "h", "score"]] = num[["x", "y", "w", "h", "score"]].astype(float)
    df["frame"] = num["frame"].astype(int)
    df["track"] = pd.to_numeric(df["track"], errors="coerce").fillna(-1).astype(int)
    if (df["frame"] < 0).any():
        raise DataError(f"{source}: negative frame numbers")
    if ((df["w"] <= 0) | (df["h"] <= 0)).any():
        raise DataError(f"{source}: every box needs a positive width and height")
    dropped = int((df["score"] < min_score).sum())
    if dropped:
        log.info("%s: %d detections below score %.2f dropped", source, dropped, min_score)
    df = df[df["score"] >= min_score]
    if n_frames is not None and len(df) and df["frame"].max() >= n_frames:
        raise DataError(f"{source}: detections on frame {int(df['frame'].max())} but the video has {n_frames} frames")
    if frame_size is not None and len(df):
        W, H = frame_size
        x0, y0 = df["x"].clip(0, W), df["y"].clip(0, H)
        x1, y1 = (df["x"] + df["w"]).clip(0, W), (df["y"] + df["h"]).clip(0, H)
        outside = (x1 - x0 < 1) | (y1 - y0 < 1)
        if outside.any():
            r = df[outside].iloc[0]
            raise DataError(f"{source}: {int(outside.sum())} box(es) lie outside the {W}x{H} frame, e.g. frame "
                            f"{int(r.frame)} box ({r.x:.0f}, {r.y:.0f}, {r.w:.0f}, {r.h:.0f})")
        df["x"], df["y"], df["w"], df["h"] = x0, y0, x1 - x0, y1 - y0
    return df.sort_values(["frame", "x", "y"], kind="stable").reset_index(drop=True)


def frame_groups(df: pd.DataFrame) -> list[np.ndarray]:
    """Row indices of each frame's detections, one array per frame that has any, in frame order."""
    frames = df["frame"].to_numpy()
    cuts = np.flatnonzero(np.diff(frames)) + 1
    return np.split(np.arange(len(df)), cuts) if len(df) else []


def iou_links(df: pd.DataFrame, iou_threshold: float = 0.5, max_gap: int = 1) -> list[tuple[int, int]]:
    """Pairs of rows (i, j) in frames at most `max_gap` apart whose boxes are each other's unique best
    IoU match above the threshold: the same animal with high probability (temporal positives)."""
    groups = frame_groups(df)
    frames = df["frame"].to_numpy()
    boxes = df[["x", "y", "w", "h"]].to_numpy()
    links = []
    for gi, g in enumerate(groups):
        for gj in range(gi + 1, len(groups)):
            h = groups[gj]
            if frames[h[0]] - frames[g[0]] > max_gap:
                break
            iou = box_iou(boxes[g], boxes[h])
            for a in range(len(g)):
                b = int(np.argmax(iou[a]))
                if iou[a, b] < iou_threshold or int(np.argmax(iou[:, b])) != a:
                    continue
                second_row = np.sort(iou[a])[-2] if len(h) > 1 else 0.0
                second_col = np.sort(iou[:, b])[-2] if len(g) > 1 else 0.0
                if max(second_row, second_col) < iou_threshold:  # unambiguous: no other box overlaps as much
                    links.append((int(g[a]), int(h[b])))
    return links


def iou_tracklets(df: pd.DataFrame, iou_threshold: float = 0.5, max_gap: int = 1,
                  links: Optional[list[tuple[int, int]]] = None) -> np.ndarray:
    """A tracklet id per row: rows joined by unambiguous IoU links between nearby frames (`links`:
    the result of iou_links with the same settings, when already computed)."""
    uf = UnionFind(len(df))
    taken_next: set[int] = set()
    taken_prev: set[int] = set()
    for i, j in (links if links is not None else iou_links(df, iou_threshold, max_gap)):
        if i in taken_next or j in taken_prev:  # keep tracklets as chains: one successor, one predecessor
            continue
        taken_next.add(i)
        taken_prev.add(j)
        uf.union(i, j)
    return uf.components().astype(np.int64)
