"""Per-video identification accuracy on real data: method x dataset x K.

Datasets:
- the real fly-pair clip with ground-truth identity tracks (SLEAP, BSD-3; shipped in examples/), K=2;
- pseudo-videos from the identity-labelled photos of ../shared/data (lion, nyala, chimpanzee, cat):
  K individuals, T frames, each frame shows one photo of each individual in one of `variants`
  random frame-to-frame variations (crop and brightness); identities are drawn first from those the
  released model never trained on (split seed 0, 30% of identities per species), then from training
  identities when a species has too few (the share of unseen identities is reported per row).

Methods, on the same detections: k-means on frozen ImageNet Lite0 features, k-means on the re-ID
model's embeddings, the same with the per-frame constraint, the self-supervised head (on both
feature kinds), and a supervised head trained with the true labels of the first 1,000 frames.
Metrics: identification accuracy after optimal cluster-to-identity matching, ARI, NMI (and IDF1 on
the real clip). Also: k estimated when unknown, on pseudo-videos where 30% of sightings are missing.
Writes benchmarks/results/video_clustering.json; re-runs skip rows already there.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from reid_hub import from_pretrained
from reid_hub.data import tables as rdata
from reid_hub.evaluation.metrics import clustering_metrics, idf1
from reid_hub.evaluation.runner import machine_info
from reid_hub.models.model import create_model
from reid_hub.video import (ClusterConfig, HeadConfig, cluster_descriptors, compute_descriptors, load_video_detections,
                            make_pseudo_video)

from common import REPO, SHARED, photo_descriptors  # the benchmarks' shared helpers

HERE = Path(__file__).resolve().parent
FLY = REPO / "examples" / "fly_pair_clip_gt"
CACHE = REPO / "runs" / "video_bench"


def methods(k: int, truth: np.ndarray, frames: np.ndarray, labelled_frames: int = 1000) -> dict:
    sup = np.where(frames < labelled_frames, truth, None)
    return {
        "kmeans_imagenet": ("imagenet", ClusterConfig(k=k, use_head=False, constrained=False), None),
        "kmeans_reid": ("reid", ClusterConfig(k=k, use_head=False, constrained=False), None),
        "kmeans_reid_constrained": ("reid", ClusterConfig(k=k, use_head=False), None),
        "head_imagenet": ("imagenet", ClusterConfig(k=k), None),
        "head_reid": ("reid", ClusterConfig(k=k), None),
        "supervised_head_reid_1000_frames": ("reid", ClusterConfig(k=k), sup),
    }


def run_methods(desc: dict[str, np.ndarray], det: pd.DataFrame, truth: np.ndarray, k: int, extra: dict = {}) -> dict:
    out = {}
    for name, (kind, cfg, ident) in {**methods(k, truth, det["frame"].to_numpy()), **extra}.items():
        t0 = time.perf_counter()
        res = cluster_descriptors(desc[kind], det, cfg, identities=ident)
        m = clustering_metrics(truth, res.labels)
        later = det["frame"].to_numpy() >= 1000  # frames the supervised baseline never saw labels of
        if later.any():
            m["accuracy_frames_1000_on"] = clustering_metrics(truth[later], res.labels[later])["accuracy"]
        m["seconds"] = round(time.perf_counter() - t0, 2)
        if "track" in det and (det["track"] >= 0).any():
            m["idf1"] = idf1(det.assign(identity=truth), res.detections)
        out[name] = {k2: round(v, 4) if isinstance(v, float) else v for k2, v in m.items()}
        print(f"   {name:34s} acc {m['accuracy']:.3f} (frames>=1000 {m.get('accuracy_frames_1000_on', 0):.3f})  ARI {m['ari']:.3f}  NMI {m['nmi']:.3f}  {m['seconds']:.1f}s",
              flush=True)
    return out




def save(report: dict, out: Path) -> None:
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=2, default=str))
    os.replace(tmp, out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="multispecies-v1")
    ap.add_argument("--ks", type=int, nargs="+", default=[4, 8, 12])
    ap.add_argument("--frames", type=int, default=1500)
    ap.add_argument("--variants", type=int, default=4)
    ap.add_argument("--species", nargs="*", help="default: every dataset in ../shared/data")
    ap.add_argument("--skip-fly", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(HERE / "results" / "video_clustering.json"))
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    out = Path(args.out)
    report = json.loads(out.read_text()) if out.is_file() else {}
    reid = from_pretrained(args.model)
    imagenet = create_model("lite0", pretrained=True)
    models = {"reid": (reid, False), "imagenet": (imagenet, True)}
    report.update({"model": args.model, "fingerprint": reid.fingerprint(), "machine": machine_info(),
                   "frames": args.frames, "variants": args.variants, "head": HeadConfig().to_dict()})
    report.setdefault("rows", {})
    if not args.skip_fly and "accuracy_frames_1000_on" not in report["rows"].get("fly_pair_clip_gt/k2", {}).get(
            "methods", {}).get("head_reid", {}):
        print("fly_pair_clip_gt (real video, ground-truth tracks), k=2", flush=True)
        source, det = load_video_detections(FLY / "video.mp4", FLY / "tracks.csv", min_score=0.0)
        desc = {kind: compute_descriptors(source, det, m, kind="backbone" if raw else "embedding",
                                          cache_dir=CACHE, progress=True) for kind, (m, raw) in models.items()}
        truth = det["identity"].to_numpy()
        extra = {"head_reid_temporal": ("reid", ClusterConfig(k=2, head=HeadConfig(temporal=True)), None),
                 "head_reid_tracklets": ("reid", ClusterConfig(k=2, tracklets=True), None),
                 "head_reid_pairwise": ("reid", ClusterConfig(k=2, head=HeadConfig(pseudo_labels="pairwise")), None)}
        report["rows"]["fly_pair_clip_gt/k2"] = {"dataset": "fly_pair_clip_gt", "k": 2, "detections": len(det),
                                                 "frames": int(det["frame"].nunique()),
                                                 "methods": run_methods(desc, det, truth, 2, extra)}
        save(report, out)
    if not SHARED.is_dir():
        print(f"no real photo data at {SHARED}: pseudo-videos skipped")
        return
    df = rdata.split_by_identity(rdata.load_sources([p.parent for p in sorted(SHARED.glob("*/metadata.csv"))]),
                                 0.3, seed=0)
    for species, part in df.groupby("species", sort=True):
        if args.species and species not in args.species:
            continue
        part = part.reset_index(drop=True)
        counts = part.groupby("label").size()
        unseen = [i for i in sorted(part.loc[part["split"] == "unseen", "label"].unique()) if counts[i] >= 2]
        seen = [i for i in sorted(part.loc[part["split"] == "train", "label"].unique()) if counts[i] >= 2]
        desc_photo = photo_descriptors(part, models, args.variants, args.seed, CACHE / f"photos_{species}.npz")
        for k in args.ks + ["estimate"]:
            key = f"{species}/k{k}"
            if key in report["rows"]:
                continue
            kk = 8 if k == "estimate" else k
            if kk > len(unseen) + len(seen):
                continue
            pool = unseen[:] if len(unseen) >= kk else unseen + seen
            photos = {i: np.flatnonzero(part["label"].to_numpy() == i) for i in pool}
            rng_pick = np.random.default_rng(args.seed + kk)
            if len(pool) > kk and len(unseen) < kk:  # keep every unseen identity, fill with seen ones
                fill = [seen[j] for j in rng_pick.choice(len(seen), kk - len(unseen), replace=False)]
                photos = {i: photos[i] for i in unseen + fill}
            visibility = 0.7 if k == "estimate" else 1.0
            det = make_pseudo_video(photos, kk, args.frames, variants=args.variants, visibility=visibility,
                                    seed=args.seed + kk)
            rows = det["photo"].to_numpy() * args.variants + det["variant"].to_numpy()
            desc = {kind: v[rows] for kind, v in desc_photo.items()}
            truth = det["identity"].to_numpy()
            share_unseen = float(np.mean([i in set(unseen) for i in set(truth)]))
            print(f"{species} pseudo-video k={k} ({share_unseen:.0%} unseen identities, {len(det)} detections)",
                  flush=True)
            row = {"dataset": species, "k": kk, "detections": len(det), "frames": args.frames,
                   "unseen_identity_share": share_unseen, "visibility": visibility}
            if k == "estimate":
                res = cluster_descriptors(desc["reid"], det, ClusterConfig(k=None))
                row["estimated_k"] = res.k
                row["k_silhouette"] = res.k_scores
                row["methods"] = {"head_reid_estimated_k": clustering_metrics(truth, res.labels)}
                print(f"   estimated k={res.k} (true {kk}); accuracy {row['methods']['head_reid_estimated_k']}")
            else:
                row["methods"] = run_methods(desc, det, truth, kk)
            report["rows"][key] = row
            save(report, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
