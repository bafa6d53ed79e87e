"""The default demo: identify the two animals of the shipped video without labels, with the default model."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np

from ..data.imaging import crop_box
from ..errors import DataError, ReidHubError
from ..evaluation.metrics import cluster_accuracy, clustering_metrics, retrieval_metrics
from ..gallery.recalibration import calibrate_open_set, recalibrate
from ..models.loading import DEFAULT_MODEL, from_pretrained
from ..resources import cache_dir as shared_cache_dir
from ..resources import examples_dir, source_checkout
from ..video import ClusterConfig, cluster_descriptors, cluster_video, iter_frames, read_tracks_csv

if TYPE_CHECKING:
    from ..gallery import Gallery

log = logging.getLogger(__name__)
DEMO_VIDEO = examples_dir() / "fly_pair_clip_gt"
DEMO_DEFINITION = examples_dir() / "demo.json"


def demo_store_dir() -> Path:
    """Where the demo gallery is built on first start ($REID_HUB_CACHE/demo-gallery): writable wherever reid-hub is
    installed."""
    return shared_cache_dir() / "demo-gallery"


#: the demo's default segment of the 1,500-frame clip, chosen by measurement: 500 frames run in under a minute
#: cold on 2 CPU cores, and of the 500-frame windows this is where plain k-means fails most (0.54 vs 1.00 for the
#: head; the whole clip: 0.84 vs 1.00), so the demo shows what the head is for
DEMO_START, DEMO_FRAMES = 750, 500


def run_demo(model_name: str = DEFAULT_MODEL, frames: int = DEMO_FRAMES, video_dir: Path = DEMO_VIDEO,
             cache_dir: Optional[Path] = None, start: int = DEMO_START) -> str:
    """Identify the animals of frames [start, start + frames) of the demo video without labels (self-supervised
    head + per-frame assignment) and compare with plain k-means on the same embeddings."""
    video, tracks_file = video_dir / "video.mp4", video_dir / "tracks.csv"
    if not video.is_file():
        raise DataError(f"demo video missing at {video}")
    t0 = time.time()
    model = from_pretrained(model_name)
    tracks = read_tracks_csv(tracks_file)
    first = tracks["frame"].min() + start
    tracks = tracks[(tracks["frame"] >= first) & (tracks["frame"] < first + frames)].reset_index(drop=True)
    if tracks.empty:
        raise DataError(f"the demo clip has no frames in [{first}, {first + frames})")
    k = int(tracks["identity"].nunique())
    result, _ = cluster_video(video, tracks, model, ClusterConfig(k=k), min_score=0.0, cache_dir=cache_dir)
    truth = result.detections["identity"].to_numpy()
    emb = np.asarray(result.embeddings)
    r = retrieval_metrics(emb @ emb.T, truth)
    plain = cluster_descriptors(emb, tracks, ClusterConfig(k=k, use_head=False, constrained=False))
    head = clustering_metrics(truth, result.labels)
    t = result.timings
    return "\n".join([
        f"model {model.config.name} ({model.fingerprint()}), {model.embedding_dim}-d embeddings",
        f"demo video: {video_dir.name}, frames {tracks['frame'].min()}-{tracks['frame'].max()} "
        f"({tracks['frame'].nunique()} frames, {len(tracks)} detections), "
        f"k={k} animals {sorted(set(truth))} (identities used only to score)",
        f"nearest-neighbour identification (leave-one-out): top-1 {r.top1:.3f}, mAP {r.mAP:.3f}",
        f"plain k-means on the embeddings: accuracy {cluster_accuracy(truth, plain.labels):.3f}",
        f"self-supervised head + per-frame assignment: accuracy {head['accuracy']:.3f}, ARI {head['ari']:.3f}, "
        f"NMI {head['nmi']:.3f}",
        f"time: decode {t['decode_s']:.1f} s, embed {t['embed_s']:.1f} s, head {t['head_s']:.1f} s, "
        f"cluster {t['cluster_s']:.2f} s; total {time.time() - t0:.1f} s"
        + (" (descriptors from the cache of an earlier run)" if t.get("descriptors_cached") else ""),
        f"backend {model.backend_name()}; the whole clip: reid-hub demo --start 0 --frames 1500",
    ])


def build_demo_gallery(model, folder: str | Path, definition: Path = DEMO_DEFINITION) -> "Gallery":
    """Create (once) the demo gallery of `definition` for `model`, with its example queries (see
    demo_examples), calibrate it and return it open."""
    import json

    import pandas as pd

    from ..data.imaging import load_image
    from ..data.synthetic import coat, photo
    from ..gallery import open_gallery

    spec = json.loads(definition.read_text())
    gallery = open_gallery(folder, model)
    if len(gallery):
        return gallery
    video_dir = definition.parent / spec["video"]
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
                       images=imgs)
    examples = Path(folder) / "examples"
    examples.mkdir(parents=True, exist_ok=True)
    ex = spec["example_frames"]
    for frame, img in iter_frames(video_dir / "video.mp4", [ex["frame"]]):
        r = tracks[(tracks["frame"] == frame) & (tracks["identity"] == ex["identity"])].iloc[0]
        crop_box(img, (r.x, r.y, r.w, r.h)).save(examples / f"1_fly_{ex['identity']}_later_frame.jpg", quality=92)
    for entry in spec.get("crop_tables", []):
        table = definition.parent / entry["table"]
        df = pd.read_csv(table)
        for identity, rows in df.groupby("identity", sort=True):
            held = entry["held_out_per_identity"]
            mid = np.linspace(1, len(rows) - 2, held).round().astype(int)  # held out between enrolled crops
            out, keep = rows.iloc[mid], rows.drop(rows.index[mid])
            imgs = [load_image(table.parent / p) for p in keep["path"]]
            iid = gallery.add_individual(entry["name"].format(identity=identity), species=entry["species"])
            gallery.enroll(iid, model.embed(imgs), sources=[f"{entry['table']}#{p}" for p in keep["path"]],
                           images=imgs)
            if identity == df["identity"].iloc[-1]:
                load_image(table.parent / out["path"].iloc[0]).save(examples / f"2_fly_{identity}_recording2.jpg")
    syn = spec.get("synthetic")
    if syn:
        for i in range(syn["individuals"]):
            base = coat(syn["first_seed"] + i)
            imgs = [photo(base, seed=j) for j in range(syn["photos_per_individual"])]
            iid = gallery.add_individual(f"spotted coat #{i + 1}", species=syn["species"])
            gallery.enroll(iid, model.embed(imgs), sources=[f"synthetic:{syn['first_seed'] + i}#{j}"
                                                            for j in range(len(imgs))], images=imgs)
        photo(coat(syn["first_seed"]), seed=99).save(examples / "3_spotted_coat_1_new_photo.jpg", quality=92)
        photo(coat(syn["unknown_seed"]), seed=7).save(examples / "4_spotted_coat_not_in_gallery.jpg", quality=92)
    checkout = source_checkout()  # real data beside a developer's checkout; an installed package has none
    shared = (checkout / spec["shared_data"]).resolve() if checkout is not None else None
    for meta_csv in sorted(shared.glob("*/metadata.csv")) if shared is not None and shared.is_dir() else []:
        df = pd.read_csv(meta_csv)
        counts = df["identity"].value_counts()
        for identity in counts[counts >= 2].index[: spec["shared_identities_per_species"]]:
            rows = df[df["identity"] == identity].head(spec["shared_images_per_identity"])
            imgs = [load_image(meta_csv.parent / p) for p in rows["path"]]
            iid = gallery.add_individual(str(identity), species=str(rows["species"].iloc[0]))
            gallery.enroll(iid, model.embed(imgs), sources=[str(meta_csv.parent / p) for p in rows["path"]],
                           images=imgs)
    if spec.get("auto_accept"):
        gallery.update_settings(auto_accept=True)
    try:
        recalibrate(gallery)  # P(same individual) for the demo's queries, the decision policy, the open-set threshold
    except ReidHubError as exc:
        log.warning("demo gallery: no probability calibration (%s)", exc)
        calibrate_open_set(gallery)
    return gallery


def demo_examples(folder: str | Path) -> list[Path]:
    """The example query images written beside the demo gallery in `folder` (one is an animal that is not
    in the gallery)."""
    return sorted((Path(folder) / "examples").glob("*.jpg"))
