"""Crop descriptors of a video's detections, computed once in batches and cached on disk (memory-mapped).

The cache key covers the frames (file size, time stamps and sampled bytes), the detections, the
model fingerprint, the descriptor kind and the crop padding, so a re-run reuses the file and any
change recomputes. A killed run resumes from the last flushed batch.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..data.atomic import write_json_atomic
from ..data.imaging import crop_box, load_image, preprocess
from ..errors import ConfigError, DataError
from ..resources import cache_dir
from .color import COLOR_DIM
from .color import VERSION as COLOR_VERSION
from .color import color_histogram
from .frames import FrameSource

log = logging.getLogger(__name__)

KINDS = ("embedding", "backbone", "color")


def default_cache_dir() -> Path:
    """Where descriptors are cached: $REID_HUB_CACHE/descriptors or ~/.cache/reid-hub/descriptors."""
    return cache_dir() / "descriptors"


def _source_digest(source: FrameSource) -> str:
    h = hashlib.sha256()
    files = source.frame_files() if source.is_folder else [source.path]
    for f in files:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{int(st.st_mtime)}".encode())
    if not source.is_folder:  # sampled bytes, so a re-encoded file of equal size still differs
        with open(source.path, "rb") as fh:
            size = source.path.stat().st_size
            for off in (0, size // 2, max(0, size - (1 << 16))):
                fh.seek(off)
                h.update(fh.read(1 << 16))
    return h.hexdigest()


def descriptor_key(source: FrameSource, detections: pd.DataFrame, model_fingerprint: str, kind: str,
                   padding: float) -> str:
    """Cache key of one (frames, detections, model, kind, padding) combination."""
    h = hashlib.sha256()
    h.update(_source_digest(source).encode())
    h.update(np.ascontiguousarray(detections[["frame", "x", "y", "w", "h"]].to_numpy(np.float64)).tobytes())
    h.update(f"{model_fingerprint}:{kind}:{padding:.4f}".encode())
    return h.hexdigest()[:24]


def compute_descriptors(source: FrameSource, detections: pd.DataFrame, model, kind: str = "embedding",
                        padding: float = 0.1, cache_dir: Optional[str | Path] = None, batch_size: int = 16,
                        progress: bool = False, timings: Optional[dict] = None) -> np.ndarray:
    """Descriptors (N, D) float32 of every detection row, as a read-only memory map of the cache file.

    `kind` is "embedding" (the re-ID model's output), "backbone" (its pooled backbone features) or
    "color" (the crop's colour histogram, see video.color; the model is not used).
    `timings`, when given, receives decode_s (decoding and cropping) and embed_s (the model).
    """
    _check_kind(kind)
    key = descriptor_key(source, detections, _fingerprint(model, kind), kind, padding)
    frames = detections["frame"].to_numpy()
    boxes = detections[["x", "y", "w", "h"]].to_numpy()

    def crops(done: int) -> Iterator[Image.Image]:
        row = done
        for f, img in source.iter_frames(np.unique(frames[done:])):
            while row < len(frames) and frames[row] == f:
                yield crop_box(img, tuple(boxes[row]), pad=padding)
                row += 1

    return _describe_cached(key, len(detections), crops, model, kind, cache_dir, batch_size, progress, timings)


def compute_crop_descriptors(paths: Sequence[str | Path], model, kind: str = "embedding",
                             cache_dir: Optional[str | Path] = None, batch_size: int = 16, progress: bool = False,
                             timings: Optional[dict] = None) -> np.ndarray:
    """Descriptors (N, D) float32 of detection crops stored as image files (a crop-video), cached like
    `compute_descriptors`; the key covers each file's path, size and modification time."""
    _check_kind(kind)
    h = hashlib.sha256(f"crops:{_fingerprint(model, kind)}:{kind}".encode())
    for p in paths:
        st = Path(p).stat()
        h.update(f"{p}:{st.st_size}:{int(st.st_mtime)}".encode())

    def crops(done: int) -> Iterator[Image.Image]:
        for p in paths[done:]:
            yield load_image(p)

    return _describe_cached(h.hexdigest()[:24], len(paths), crops, model, kind, cache_dir, batch_size, progress,
                            timings)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ConfigError(f"descriptor kind must be one of {KINDS}, got {kind!r}")


def _fingerprint(model, kind: str) -> str:
    return COLOR_VERSION if kind == "color" else model.fingerprint()


def _describer(model, kind: str) -> tuple[Callable[[Image.Image], object], Callable[[list], np.ndarray], int]:
    """One descriptor kind as (prepare: crop -> item, run: items -> (n, D) array, D); `run` is the timed part."""
    if kind == "color":
        return color_histogram, lambda items: np.stack(items), COLOR_DIM
    cfg = model.config.preprocess
    raw = kind == "backbone"
    with torch.inference_mode():
        dim = model.describe(torch.zeros(1, 3, cfg.size, cfg.size), raw_features=raw).shape[1]
    return (lambda crop: preprocess(crop, cfg),
            lambda items: np.asarray(model.describe(torch.stack(items), raw_features=raw)), dim)


def prefetched(items: Iterator[Any], depth: int) -> Iterator[Any]:
    """`items` produced by a background thread up to `depth` ahead, so decoding and cropping run while the
    consumer embeds (OpenCV, PIL and ONNX Runtime release the GIL). The producer's exception is raised here."""
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    end = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(end)
        except BaseException as exc:  # handed to the consumer, raised in its thread
            q.put(exc)

    worker = threading.Thread(target=produce, name="reid-hub-decode", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is end:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)


def _describe_cached(key: str, n: int, crops: Callable[[int], Iterator[Image.Image]], model, kind: str,
                     cache_dir: Optional[str | Path], batch_size: int, progress: bool,
                     timings: Optional[dict]) -> np.ndarray:
    """The cache file `key` of n descriptors, computed from `crops(done)` (the crops from row `done` on)
    where missing, resumed from the last flushed batch, then memory-mapped read-only."""
    t_start = time.perf_counter()
    t_model = 0.0
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    final, partial, progress_file = cache / f"{key}.npy", cache / f"{key}.partial.npy", cache / f"{key}.json"
    if final.is_file():
        log.info("descriptors from cache %s", final)
        if timings is not None:
            timings.update(decode_s=0.0, embed_s=0.0, cached=True)
        return np.load(final, mmap_mode="r")
    prepare, describe, dim = _describer(model, kind)
    done = 0
    if partial.is_file() and progress_file.is_file():
        state = json.loads(progress_file.read_text())
        if state.get("n") == n and state.get("dim") == dim:
            done = int(state["done"])
    if done:
        out = np.load(partial, mmap_mode="r+")
        log.info("resuming descriptors at %d / %d", done, n)
    else:
        out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=(n, dim))
    batch: list = []
    start = done
    bar = tqdm(total=n, initial=done, disable=not progress, desc="descriptors", unit="crop")

    def flush() -> None:
        nonlocal start, batch, t_model
        if batch:
            t = time.perf_counter()
            d = describe(batch)
            t_model += time.perf_counter() - t
            out[start:start + len(d)] = d
            start += len(d)
            bar.update(len(d))
            batch = []
            out.flush()
            write_json_atomic(progress_file, {"n": n, "dim": dim, "done": start})

    if done < n:
        for item in prefetched((prepare(crop) for crop in crops(done)), depth=2 * batch_size):
            batch.append(item)
            if len(batch) >= batch_size:
                flush()
        flush()
    bar.close()
    if start != n:
        raise DataError(f"descriptor source gave {start} crops for {n} rows")
    del out
    os.replace(partial, final)
    progress_file.unlink(missing_ok=True)
    if timings is not None:
        timings.update(decode_s=time.perf_counter() - t_start - t_model, embed_s=t_model, cached=False)
    return np.load(final, mmap_mode="r")
