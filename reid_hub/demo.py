"""The default demo: identify the two animals of the shipped video with the default model."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans

from .errors import DataError
from .evaluate import retrieval_metrics
from .hub import DEFAULT_MODEL, from_pretrained
from .imaging import crop_box
from .video import iter_frames, read_tracks_csv

DEMO_VIDEO = Path(__file__).resolve().parent.parent / "gallery" / "demo" / "fly_pair_clip_gt"


def cluster_accuracy(truth: np.ndarray, pred: np.ndarray) -> float:
    """Share of items whose cluster maps to their identity under the best one-to-one matching."""
    ids, clusters = np.unique(truth), np.unique(pred)
    counts = np.array([[np.sum((truth == t) & (pred == c)) for c in clusters] for t in ids])
    r, c = linear_sum_assignment(-counts)
    return float(counts[r, c].sum() / len(truth))


def run_demo(model_name: str = DEFAULT_MODEL, frames: int = 200, video_dir: Path = DEMO_VIDEO) -> str:
    """Embed the animals of `frames` evenly spaced frames, then report retrieval and 2-means accuracy."""
    video, tracks_file = video_dir / "video.mp4", video_dir / "tracks.csv"
    if not video.is_file():
        raise DataError(f"demo video missing at {video}")
    t0 = time.time()
    model = from_pretrained(model_name)
    tracks = read_tracks_csv(tracks_file)
    all_frames = np.sort(tracks["frame"].unique())
    chosen = all_frames[np.linspace(0, len(all_frames) - 1, min(frames, len(all_frames))).astype(int)]
    crops, labels = [], []
    by_frame = {f: g for f, g in tracks[tracks["frame"].isin(chosen)].groupby("frame")}
    for f, img in iter_frames(video, chosen):
        for r in by_frame[f].itertuples():
            crops.append(crop_box(img, (r.x, r.y, r.w, r.h)))
            labels.append(r.identity)
    t_embed = time.time()
    emb = model.embed(crops)
    t_done = time.time()
    labels_arr = np.asarray(labels)
    r = retrieval_metrics(emb @ emb.T, labels_arr)
    pred = KMeans(n_clusters=len(set(labels)), n_init=10, random_state=0).fit_predict(emb)
    acc = cluster_accuracy(labels_arr, pred)
    return "\n".join([
        f"model {model.config.name} ({model.fingerprint()}), {model.embedding_dim}-d embeddings",
        f"demo video: {video_dir.name}, {len(chosen)} frames, {len(crops)} detections, identities {sorted(set(labels))}",
        f"nearest-neighbour identification (leave-one-out): top-1 {r.top1:.3f}, mAP {r.mAP:.3f}",
        f"k-means (k={len(set(labels))}) on embeddings, accuracy after best matching: {acc:.3f}",
        f"time: load+decode {t_embed - t0:.1f} s, embed {t_done - t_embed:.1f} s "
        f"({len(crops) / max(1e-9, t_done - t_embed):.0f} crops/s)",
    ])
