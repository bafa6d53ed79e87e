"""Real multi-animal crop-videos (../shared/data/video/fish_fs48_seq*): per-video identification accuracy,
k estimation, persistent IDs across cameras, and cost per 1,000 crops.

Each camera of a recording is one video (k = its number of distinct fish, given); crops are sampled every
80 video frames, so nothing can be tracked. Methods on the same crops: plain k-means and the
self-supervised head on a model's descriptors (per model), the head on ImageNet Lite0 features, and the
three cameras of a recording clustered jointly (one crop table, each fish at most once per camera and
frame). k estimation: with k left out, per camera (estimate, runner-up, confidence). Persistent IDs: the
cameras of a recording go through one fresh gallery in turn (cluster, then assign_video), as unrelated
clips (open set) and declared as one encounter; and the three cameras clustered as one table. Reported:
the share of fish that get one ID in all three cameras, false merges (two fish, one ID), false new IDs.
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
from typing import Any, Optional

import numpy as np
import pandas as pd

from reid_hub import from_pretrained
from reid_hub.app.clips import assign_video
from reid_hub.evaluation.metrics import cluster_accuracy
from reid_hub.evaluation.runner import imagenet_baseline, machine_info
from reid_hub.video import ClusterConfig, cluster_crops, read_crop_table

from common import SHARED as DATA  # the benchmarks' shared helpers

HERE = Path(__file__).resolve().parent
SHARED = DATA / "video"


def _run(table: pd.DataFrame, model: Any, cfg: ClusterConfig, descriptor: str = "embedding",
         cache_dir: Optional[str] = None) -> tuple[float, Any]:
    res = cluster_crops(table, model, cfg, descriptor=descriptor, cache_dir=cache_dir, progress=False)
    det = res.detections.sort_values("input_row")
    return cluster_accuracy(det["identity"], det["label"]), res


def _per_camera(det: pd.DataFrame) -> dict[str, float]:
    return {str(c): cluster_accuracy(p["identity"], p["label"]) for c, p in det.groupby("camera", sort=True)}


def _id_agreement(owner: dict[str, dict[str, str]], fish: list[str], cams: list[str]) -> dict[str, Any]:
    """owner: fish -> camera -> persistent id (of the cluster that mostly holds that fish)."""
    same = sum(1 for f in fish if all(c in owner.get(f, {}) for c in cams) and len(set(owner[f].values())) == 1)
    by_id: dict[str, set[str]] = {}
    for f, per_cam in owner.items():
        for pid in per_cam.values():
            by_id.setdefault(pid, set()).add(f)
    return {"fish": len(fish), "one_id_in_all_cameras": same, "share": round(same / len(fish), 4),
            "persistent_ids_minted": len(by_id),
            "false_merges": sum(1 for v in by_id.values() if len(v) > 1),
            "false_new_ids": len(by_id) - len(fish) + sum(len(v) - 1 for v in by_id.values() if len(v) > 1)}


def cross_camera_ids(table: pd.DataFrame, model: Any, encounter: Optional[str]) -> dict[str, Any]:
    """Cameras in turn through one fresh gallery (cluster, then assign_video; with `encounter`, the
    cameras are declared one encounter): how many fish keep one persistent ID in all cameras."""
    from reid_hub.gallery import open_gallery

    folder = Path(tempfile.mkdtemp(prefix="fishgal"))
    try:
        g = open_gallery(folder / "g", model, create=True)
        owner: dict[str, dict[str, str]] = {}
        for cam, part in table.groupby("camera", sort=True):
            part = part.reset_index(drop=True)
            res = cluster_crops(part, model, ClusterConfig(k=part["identity"].nunique()))
            assigned = assign_video(g, res, video_name=f"camera {cam}", encounter=encounter)
            ids = {str(a.cluster): a.individual_id for a in assigned}
            for label, rows in res.detections.groupby("label"):
                owner.setdefault(rows["identity"].mode().iloc[0], {})[str(cam)] = ids[str(label)]
        g.close()
        return _id_agreement(owner, sorted(table["identity"].unique()), sorted(map(str, table["camera"].unique())))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def joint_ids(det: pd.DataFrame) -> dict[str, Any]:
    """The three cameras clustered as one crop table: the cluster that mostly holds each fish, per camera."""
    owner: dict[str, dict[str, str]] = {}
    for (cam, fish), rows in det.groupby(["camera", "identity"]):
        owner.setdefault(fish, {})[str(cam)] = str(rows["label"].mode().iloc[0])
    # one cluster claimed by two fish in one camera is a merge; resolve as the gallery would (one id per cluster)
    return _id_agreement(owner, sorted(det["identity"].unique()), sorted(map(str, det["camera"].unique())))


def cross_camera_only(recordings: list[Path], models: list[str], tag: str) -> None:
    """Persistent IDs across the cameras of each recording, per model: per recording and in total."""
    out_file = HERE / "results" / "fish_cross_camera.json"
    old = json.loads(out_file.read_text()) if out_file.is_file() else {}
    runs = old.get("runs", {})
    for name in models:
        model = from_pretrained(name)
        res: dict[str, Any] = {}
        for rec in recordings:
            table = read_crop_table(rec / "tracks.csv")
            res[rec.name] = {"cameras in turn, open set": cross_camera_ids(table, model, None),
                             "cameras in turn, one encounter": cross_camera_ids(table, model, rec.name)}
            print(rec.name, json.dumps(res[rec.name]), flush=True)
        total = {}
        for mode in ("cameras in turn, open set", "cameras in turn, one encounter"):
            parts = [r[mode] for r in res.values()]
            fish = sum(p["fish"] for p in parts)
            same = sum(p["one_id_in_all_cameras"] for p in parts)
            total[mode] = {"fish": fish, "one_id_in_all_cameras": same, "share": round(same / fish, 4),
                           "persistent_ids_minted": sum(p["persistent_ids_minted"] for p in parts),
                           "false_merges": sum(p["false_merges"] for p in parts),
                           "false_new_ids": sum(p["false_new_ids"] for p in parts)}
        runs.setdefault(tag, {})[name] = {"recordings": res, "total": total}
        print(name, json.dumps(total), flush=True)
    out_file.write_text(json.dumps({"machine": machine_info(), "runs": runs}, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="*", default=["multispecies-v2", "multispecies-v1"])
    ap.add_argument("--out", default=str(HERE / "results" / "fish_crop_videos.json"))
    ap.add_argument("--cross-camera-only", metavar="TAG", help="only the persistent IDs across cameras (cameras in "
                    "turn, open set and one encounter), into results/fish_cross_camera.json under TAG")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    recordings = sorted(p.parent for p in SHARED.glob("fish_fs48_seq*/tracks.csv"))
    if not recordings:
        raise SystemExit(f"no fish crop-videos under {SHARED}")
    if args.cross_camera_only:
        cross_camera_only(recordings, args.models, args.cross_camera_only)
        return
    imagenet = imagenet_baseline("lite0")
    out: dict[str, Any] = {"videos": {}, "joint": {}, "k_estimation": {}, "cross_camera": {}, "cost": {},
                           "defaults": ClusterConfig().to_dict()}
    for name in args.models:
        model = from_pretrained(name)
        t = {"embed": 0.0, "color": 0.0, "head": 0.0}
        n_crops = 0
        for rec in recordings:
            table = read_crop_table(rec / "tracks.csv")
            for cam, part in table.groupby("camera", sort=True):
                part = part.reset_index(drop=True)
                k = part["identity"].nunique()
                key = f"{rec.name}/{cam}"
                row = out["videos"].setdefault(key, {"crops": len(part), "k": k})
                row[f"{name} plain k-means"], _ = _run(part, model, ClusterConfig(k=k, use_head=False, constrained=False,
                                                                                 color_weight=0))
                row[f"{name} head, no colour"], _ = _run(part, model, ClusterConfig(k=k, color_weight=0))
                with tempfile.TemporaryDirectory() as fresh:  # a cold cache: the cost below is the whole cost
                    row[f"{name} head (default)"], res = _run(part, model, ClusterConfig(k=k), cache_dir=fresh)
                t["embed"] += res.timings["embed_s"] + res.timings["decode_s"]
                t["color"] += res.timings["color_s"]
                t["head"] += res.timings["head_s"] + res.timings["cluster_s"]
                n_crops += len(part)
                if "imagenet head" not in row:
                    row["imagenet head"], _ = _run(part, imagenet, ClusterConfig(k=k, color_weight=0),
                                                   descriptor="backbone")
                est = cluster_crops(part, model, ClusterConfig(k=None)).k_estimate
                out["k_estimation"].setdefault(key, {"k": k})[name] = est.to_dict()
            k_all = table["identity"].nunique()
            _, res = _run(table, model, ClusterConfig(k=k_all))
            det = res.detections.sort_values("input_row")
            jrow = out["joint"].setdefault(rec.name, {"crops": len(table), "k": k_all})
            jrow[f"{name} head (default), 3 cameras jointly"] = {f"{rec.name}/{c}": v for c, v in _per_camera(det).items()}
            out["cross_camera"].setdefault(rec.name, {})[name] = {
                "cameras in turn, open set": cross_camera_ids(table, model, None),
                "cameras in turn, one encounter": cross_camera_ids(table, model, rec.name),
                "cameras jointly (one crop table)": joint_ids(det)}
            logging.warning("%s %s done", name, rec.name)
        out["cost"][name] = {"crops": int(n_crops), "decode_and_embed_s_per_1000": round(1000 * t["embed"] / n_crops, 2),
                             "colour_s_per_1000": round(1000 * t["color"] / n_crops, 2),
                             "head_and_cluster_s_per_1000": round(1000 * t["head"] / n_crops, 2)}
    summary: dict[str, Any] = {}
    cols = sorted({c for r in out["videos"].values() for c in r if c not in ("crops", "k")})
    for c in cols:
        summary[c] = round(float(np.mean([r[c] for r in out["videos"].values() if c in r])), 4)
    for name in args.models:
        vals = [v for r in out["joint"].values() for v in r.get(f"{name} head (default), 3 cameras jointly", {}).values()]
        if vals:
            summary[f"{name} head (default), 3 cameras jointly"] = round(float(np.mean(vals)), 4)
        exact = [v[name]["k"] == v["k"] for v in out["k_estimation"].values() if name in v]
        out.setdefault("k_exact", {})[name] = f"{sum(exact)} of {len(exact)}"
        for mode in ("cameras in turn, open set", "cameras in turn, one encounter", "cameras jointly (one crop table)"):
            rows = [r[name][mode] for r in out["cross_camera"].values() if name in r]
            fish = sum(r["fish"] for r in rows)
            out.setdefault("cross_camera_total", {}).setdefault(name, {})[mode] = {
                "fish": fish, "one_id_in_all_cameras": sum(r["one_id_in_all_cameras"] for r in rows),
                "share": round(sum(r["one_id_in_all_cameras"] for r in rows) / max(fish, 1), 4),
                "false_merges": sum(r["false_merges"] for r in rows),
                "false_new_ids": sum(r["false_new_ids"] for r in rows)}
    out["mean_accuracy"] = summary
    out["machine"] = machine_info()
    out["date_run"] = time.strftime("%Y-%m-%d")
    Path(args.out).write_text(json.dumps(out, indent=2, default=float))
    print(json.dumps({k: out[k] for k in ("mean_accuracy", "k_exact", "cross_camera_total", "cost")}, indent=2))


if __name__ == "__main__":
    main()
