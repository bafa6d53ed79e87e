"""Real multi-animal crop-videos (../shared/data/video/fish_fs48_seq*): per-video identification accuracy,
k estimation, persistent IDs across cameras, and cost per 1,000 crops.

Each camera of a recording is one video (k = its number of distinct fish, given); crops are sampled every
80 video frames, so nothing can be tracked. Methods on the same crops: plain k-means and the
self-supervised head on a model's descriptors (per model), the head on ImageNet Lite0 features, and the
three cameras of a recording clustered jointly (one crop table, each fish at most once per camera and
frame). k estimation: with k left out, per camera. Persistent IDs: the cameras of a recording go
through one fresh gallery in turn (cluster, then assign_video): the share of fish that get one ID in
all three cameras, false merges (two fish, one ID) and false new IDs.
Writes benchmarks/results/fish_crop_videos.json. Usage: python benchmarks/fish_crop_videos.py [--models ...]
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reid_hub import from_pretrained
from reid_hub.evaluate import cluster_accuracy, imagenet_baseline, machine_info
from reid_hub.video import ClusterConfig, assign_video, cluster_crops, read_crop_table

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data" / "video"


def _run(table: pd.DataFrame, model: Any, cfg: ClusterConfig, descriptor: str = "embedding") -> tuple[float, Any]:
    res = cluster_crops(table, model, cfg, descriptor=descriptor, progress=False)
    det = res.detections.sort_values("input_row")
    return cluster_accuracy(det["identity"], det["label"]), res


def cross_camera_ids(table: pd.DataFrame, model: Any) -> dict[str, Any]:
    """Cameras in turn through one gallery: how many fish keep one persistent ID in all cameras."""
    from reid_hub.gallery import open_gallery

    folder = Path(tempfile.mkdtemp(prefix="fishgal"))
    try:
        g = open_gallery(folder / "g", model, create=True)
        owner: dict[str, dict[str, str]] = {}  # fish -> camera -> persistent id
        for cam, part in table.groupby("camera", sort=True):
            part = part.reset_index(drop=True)
            res = cluster_crops(part, model, ClusterConfig(k=part["identity"].nunique()))
            det = res.detections
            assigned = assign_video(g, res, video_name=f"camera {cam}")
            ids = {str(a.cluster): a.individual_id for a in assigned}
            for label, rows in det.groupby("label"):
                fish = rows["identity"].mode().iloc[0]  # the fish this cluster mostly holds
                owner.setdefault(fish, {})[cam] = ids[str(label)]
        g.close()
        cams = sorted(table["camera"].unique())
        fish = sorted(table["identity"].unique())
        same = sum(1 for f in fish if len({owner.get(f, {}).get(c) for c in cams} - {None}) == 1
                   and all(c in owner.get(f, {}) for c in cams))
        by_id: dict[str, set[str]] = {}
        for f, per_cam in owner.items():
            for pid in per_cam.values():
                by_id.setdefault(pid, set()).add(f)
        return {"fish": len(fish), "one_id_in_all_cameras": same, "share": same / len(fish),
                "persistent_ids_minted": len(by_id),
                "false_merges": sum(1 for s in by_id.values() if len(s) > 1),
                "false_new_ids": len(by_id) - len(fish) + sum(len(s) - 1 for s in by_id.values() if len(s) > 1)}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="*", default=["multispecies-v2", "multispecies-v1"])
    ap.add_argument("--out", default=str(HERE / "results" / "fish_crop_videos.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    recordings = sorted(p.parent for p in SHARED.glob("fish_fs48_seq*/tracks.csv"))
    if not recordings:
        raise SystemExit(f"no fish crop-videos under {SHARED}")
    imagenet = imagenet_baseline("lite0")
    out: dict[str, Any] = {"videos": {}, "joint": {}, "k_estimation": {}, "cross_camera": {}, "cost": {}}
    for name in args.models:
        model = from_pretrained(name)
        t_embed = t_head = n_crops = 0.0
        for rec in recordings:
            table = read_crop_table(rec / "tracks.csv")
            for cam, part in table.groupby("camera", sort=True):
                part = part.reset_index(drop=True)
                k = part["identity"].nunique()
                key = f"{rec.name}/{cam}"
                row = out["videos"].setdefault(key, {"crops": len(part), "k": k})
                row[f"{name} kmeans"], _ = _run(part, model, ClusterConfig(k=k, use_head=False, constrained=False))
                row[f"{name} head"], res = _run(part, model, ClusterConfig(k=k))
                t_embed += res.timings["embed_s"] + res.timings["decode_s"]
                t_head += res.timings["head_s"] + res.timings["cluster_s"]
                n_crops += len(part)
                if "imagenet head" not in row:
                    row["imagenet head"], _ = _run(part, imagenet, ClusterConfig(k=k), descriptor="backbone")
                est = cluster_crops(part, model, ClusterConfig(k=None)).k_scores
                ranked = sorted(est, key=est.get, reverse=True)
                out["k_estimation"].setdefault(key, {"k": k})[name] = {
                    "estimated": int(ranked[0]), "runner_up": int(ranked[1]) if len(ranked) > 1 else None,
                    "silhouette": {str(a): round(float(b), 4) for a, b in est.items()}}
            k_all = table["identity"].nunique()
            out["joint"].setdefault(rec.name, {"crops": len(table), "k": k_all})[f"{name} head, 3 cameras jointly"] = \
                _run(table, model, ClusterConfig(k=k_all))[0]
            out["cross_camera"].setdefault(rec.name, {})[name] = cross_camera_ids(table, model)
            logging.warning("%s %s done", name, rec.name)
        out["cost"][name] = {"crops": int(n_crops), "decode_and_embed_s_per_1000": round(1000 * t_embed / n_crops, 2),
                             "head_and_cluster_s_per_1000": round(1000 * t_head / n_crops, 2)}
    for name in args.models + ["imagenet"]:
        cols = [f"{name} head"] if name == "imagenet" else [f"{name} head", f"{name} kmeans"]
        for c in cols:
            vals = [r[c] for r in out["videos"].values() if c in r]
            if vals:
                out.setdefault("mean_accuracy", {})[c] = round(float(np.mean(vals)), 4)
    for name in args.models:
        exact = [v[name]["estimated"] == v["k"] for v in out["k_estimation"].values() if name in v]
        out.setdefault("k_exact", {})[name] = f"{sum(exact)} of {len(exact)}"
    out["machine"] = machine_info()
    out["date_run"] = time.strftime("%Y-%m-%d")
    Path(args.out).write_text(json.dumps(out, indent=2, default=float))
    print(json.dumps({k: out[k] for k in ("mean_accuracy", "k_exact", "cost")}, indent=2))


if __name__ == "__main__":
    main()
