"""Crop-videos: a table of detection crops (what detectors that export crops produce) as clustering input.

A crop table is a CSV or Parquet file with the columns `frame` and `path` (relative to the table, or
absolute) and optionally camera, track, score, x, y, w, h; other columns (e.g. identity) are carried
along and ignored by the clustering. Crops of one frame (of one camera) are different animals. With
several cameras in one table, the cameras are clustered jointly: one label per animal across cameras,
and each animal is still seen at most once per camera and frame (synchronized views).
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
from PIL import Image

from ..errors import ConfigError, DataError, TooLargeError
from .cluster import ClusterConfig, VideoClustering, cluster_described
from .descriptors import compute_crop_descriptors

log = logging.getLogger(__name__)

CROP_TABLE_COLUMNS = ("frame", "path")
TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def _read_table(path: Path) -> pd.DataFrame:
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable crop table ({exc})") from exc


def is_crop_table(path: str | Path) -> bool:
    """True when `path` is a CSV/Parquet table with `frame` and `path` columns (a crop-video)."""
    p = Path(path)
    if not p.is_file() or p.suffix.lower() not in TABLE_SUFFIXES:
        return False
    try:
        cols = (pd.read_parquet(p).columns if p.suffix.lower() in (".parquet", ".pq")
                else pd.read_csv(p, nrows=0).columns)
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError):
        return False
    return set(CROP_TABLE_COLUMNS) <= set(cols)


def read_crop_table(path: str | Path, min_score: float = 0.0, root: Optional[str | Path] = None) -> pd.DataFrame:
    """The validated crop table: absolute `path`, integer `frame`, `camera` (string, "" when absent),
    `score` (1 when absent), x/y/w/h (the crop's own frame, 0, 0, width, height, when absent) and
    `input_row` (its row in the file). Rows under `min_score` are dropped. With `root`, every crop path must
    lie inside it (checked before any crop file is touched: an upload may not make the server read its own
    files); every crop must be a decodable image (DataError naming the row otherwise)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such crop table: {path}")
    df = _read_table(path)
    missing = [c for c in CROP_TABLE_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{path}: a crop table needs the columns frame and path; missing {missing}")
    if df.empty:
        raise DataError(f"{path}: the crop table has no rows")
    df = df.copy()
    df["input_row"] = np.arange(len(df))
    frames = pd.to_numeric(df["frame"], errors="coerce")
    if frames.isna().any() or (frames < 0).any() or (frames != frames.round()).any():
        bad = df.loc[frames.isna() | (frames < 0) | (frames != frames.round()), "frame"].iloc[0]
        raise DataError(f"{path}: frame must be a non-negative integer, got {bad!r}")
    df["frame"] = frames.astype(np.int64)
    df["path"] = [str(p) if Path(str(p)).is_absolute() else str(path.parent / str(p)) for p in df["path"]]
    if root is not None:
        inside = Path(root).resolve()
        for r, p in enumerate(df["path"]):  # the text first: resolve() only follows links that lie inside root
            if "\x00" in p or inside not in Path(os.path.normpath(p)).parents or inside not in Path(p).resolve().parents:
                raise DataError(f"{path}: row {r + 1}: crop paths must lie inside the archive; {p!r} does not")
    absent = [p for p in df["path"] if not Path(p).is_file()]
    if absent:
        raise DataError(f"{path}: {len(absent)} crop file(s) not found, e.g. {absent[0]}")
    sizes = []
    for r, p in enumerate(df["path"]):
        try:
            with Image.open(p) as im:
                sizes.append(im.size)
                im.verify()
        except Exception as exc:  # PIL raises many types for a file that is not an image
            raise DataError(f"{path}: row {r + 1}: crop {Path(p).name!r} is not a readable image") from exc
    df["camera"] = df["camera"].astype(str) if "camera" in df.columns else ""
    df["score"] = pd.to_numeric(df["score"], errors="coerce").fillna(1.0) if "score" in df.columns else 1.0
    if "track" not in df.columns:
        df["track"] = -1
    if not {"x", "y", "w", "h"} <= set(df.columns):
        df["x"], df["y"] = 0.0, 0.0
        df["w"], df["h"] = [float(s[0]) for s in sizes], [float(s[1]) for s in sizes]
    df = df[df["score"] >= min_score]
    if df.empty:
        raise DataError(f"{path}: no crop reaches the score threshold {min_score}")
    return df.reset_index(drop=True)


def crop_detections(table: pd.DataFrame) -> pd.DataFrame:
    """The table as clustering detections: `frame` becomes one group per (camera, frame), so crops that
    share it are different animals; the source frame is kept as `source_frame`. Sorted by group."""
    det = table.copy()
    det["source_frame"] = det["frame"]
    keys = pd.MultiIndex.from_frame(det[["frame", "camera"]])
    det["frame"] = pd.factorize(keys, sort=True)[0].astype(np.int64)
    return det.sort_values(["frame", "input_row"], kind="stable").reset_index(drop=True)


#: the largest expansion of one archive entry (uncompressed / compressed bytes) accepted: photos barely compress
MAX_COMPRESSION_RATIO = 100
_DEVICE_NAMES = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


def _check_entry(info: Any, dest: Path) -> None:
    """Refuse an archive entry that is a link, names an absolute path, a parent folder or a device, or expands
    like a bomb: from the zip's directory alone, before anything is written."""
    name = info.filename
    parts = name.replace("\\", "/").split("/")
    if (name.startswith(("/", "\\")) or ":" in parts[0] or ".." in parts or "\x00" in name
            or any(Path(x).stem.lower() in _DEVICE_NAMES for x in parts if x)):
        raise DataError(f"archive entry {name!r} points outside the archive or names a device")
    if (info.external_attr >> 16) & 0o170000 not in (0, 0o100000):  # a symlink, device or FIFO
        raise DataError(f"archive entry {name!r} is not a plain file")
    if dest not in (dest / name).resolve().parents:
        raise DataError(f"archive entry {name!r} points outside the archive")
    if info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1) and info.file_size > 1 << 20:
        raise TooLargeError(f"archive entry {name!r} expands {info.file_size // max(info.compress_size, 1)}-fold: "
                            "refused as a zip bomb")


def extract_crop_archive(archive: str | Path, dest: str | Path, max_files: int = 50000,
                         max_bytes: int = 2 << 30) -> Path:
    """Unpack a zip of a crop-video (its table and the crop images, paths relative to the table) into
    `dest` and return the table's path. Everything is checked from the zip's directory before a byte is
    written: entries outside `dest` (absolute, `..`, device names), links, more than `max_files` entries,
    more than `max_bytes` unpacked or an entry that expands like a bomb (TooLargeError); while streaming, the
    bytes really written are counted against the same limits."""
    import shutil
    import zipfile

    dest = Path(dest).resolve()
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            if len(infos) > max_files:
                raise TooLargeError(f"the archive has {len(infos)} files; at most {max_files}")
            if sum(i.file_size for i in infos) > max_bytes:
                raise TooLargeError(f"the archive unpacks to more than {max_bytes} bytes")
            for info in infos:
                _check_entry(info, dest)
            written = 0
            for info in infos:
                target = dest / info.filename
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    while chunk := src.read(1 << 20):
                        written += len(chunk)
                        if written > max_bytes or out.tell() + len(chunk) > max(info.file_size, 0) + (1 << 20):
                            raise TooLargeError("the archive unpacks to more than its directory says")
                        out.write(chunk)
    except zipfile.BadZipFile as exc:
        raise DataError(f"not a zip archive of crops ({exc})") from exc
    except TooLargeError:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    tables = [p for p in dest.rglob("*") if p.suffix.lower() in TABLE_SUFFIXES and is_crop_table(p)]
    if len(tables) != 1:
        raise DataError(f"the archive must hold exactly one crop table (CSV/Parquet with frame and path columns); "
                        f"found {len(tables)}")
    return tables[0]


def read_crop_archive(archive: str | Path, dest: str | Path, max_files: int = 50000,
                      max_bytes: int = 2 << 30) -> pd.DataFrame:
    """The validated crop table of an uploaded zip (see extract_crop_archive), refusing tables whose
    paths point outside the archive (an upload may not make the server read its own files)."""
    root = Path(dest).resolve()
    return read_crop_table(extract_crop_archive(archive, root, max_files, max_bytes), root=root)


def cluster_crops(table: str | Path | pd.DataFrame, model: Any, config: ClusterConfig = ClusterConfig(),
                  min_score: float = 0.0, descriptor: str = "embedding", cache_dir: Optional[str | Path] = None,
                  batch_size: int = 16, progress: bool = False) -> VideoClustering:
    """Identify every animal of a crop-video without labels (see cluster_video); the result's
    labels.csv keeps one row per input crop, in input order."""
    t0 = time.perf_counter()
    crops = table if isinstance(table, pd.DataFrame) else read_crop_table(table, min_score)
    if not {"frame", "path", "camera", "input_row"} <= set(crops.columns):
        raise ConfigError("a crop DataFrame must come from read_crop_table")
    det = crop_detections(crops)
    timings: dict = {"read_detections_s": time.perf_counter() - t0}
    paths = list(det["path"])
    desc = compute_crop_descriptors(paths, model, kind=descriptor, cache_dir=cache_dir,
                                    batch_size=batch_size, progress=progress, timings=timings)
    return cluster_described(desc, lambda: compute_crop_descriptors(paths, model, kind="color", cache_dir=cache_dir,
                                                                    batch_size=256),
                             det, config, descriptor, timings, progress)


__all__ = ["is_crop_table", "read_crop_table", "crop_detections", "cluster_crops", "extract_crop_archive",
           "read_crop_archive", "CROP_TABLE_COLUMNS"]
