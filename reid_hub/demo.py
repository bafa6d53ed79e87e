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

REPO = Path(__file__).resolve().parent.parent
DEMO_VIDEO = REPO / "gallery" / "demo" / "fly_pair_clip_gt"
DEMO_DEFINITION = REPO / "gallery" / "demo.json"


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


def build_demo_gallery(model, folder: str | Path, definition: Path = DEMO_DEFINITION) -> "Gallery":
    """Create (once) the demo gallery of `definition` for `model`, calibrate it and return it open."""
    import json

    import pandas as pd

    from .gallery import open_gallery
    from .imaging import load_image

    spec = json.loads(definition.read_text())
    gallery = open_gallery(folder, model)
    if len(gallery):
        return gallery
    video_dir = REPO / spec["video"]
    tracks = read_tracks_csv(video_dir / "tracks.csv")
    f = spec["video_frames"]
    wanted = [x for x in range(f["start"], f["stop"], f["step"]) if x in set(tracks["frame"])]
    crops: dict[str, list] = {}
    meta: dict[str, list] = {}
    for frame, img in iter_frames(video_dir / "video.mp4", wanted):
        for r in tracks[tracks["frame"] == frame].itertuples():
            crops.setdefault(r.identity, []).append(crop_box(img, (r.x, r.y, r.w, r.h)))
            meta.setdefault(r.identity, []).append((frame, (r.x, r.y, r.w, r.h)))
    for identity, imgs in crops.items():
        iid = gallery.add_individual(f"fly {identity}", species="drosophila")
        gallery.enroll(iid, model.embed(imgs), sources=[f"{spec['video']}#frame{m[0]}" for m in meta[identity]],
                       boxes=[m[1] for m in meta[identity]], video=spec["video"], frames=[m[0] for m in meta[identity]],
                       thumbnails=imgs)
    shared = (REPO / spec["shared_data"]).resolve()
    for meta_csv in sorted(shared.glob("*/metadata.csv")) if shared.is_dir() else []:
        df = pd.read_csv(meta_csv)
        counts = df["identity"].value_counts()
        for identity in counts[counts >= 2].index[: spec["shared_identities_per_species"]]:
            rows = df[df["identity"] == identity].head(spec["shared_images_per_identity"])
            imgs = [load_image(meta_csv.parent / p) for p in rows["path"]]
            iid = gallery.add_individual(str(identity), species=str(rows["species"].iloc[0]))
            gallery.enroll(iid, model.embed(imgs), sources=[str(meta_csv.parent / p) for p in rows["path"]],
                           thumbnails=imgs)
    gallery.calibrate()
    return gallery
