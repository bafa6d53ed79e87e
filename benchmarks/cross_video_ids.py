"""Cross-video persistent IDs on real data.

Per species, the unseen identities (never trained on) are spread over several pseudo-videos that
share some individuals; each identity's images are divided among the videos it appears in (no image
is reused). The videos are fed in sequence to a fresh gallery through `assign_clip`, with the
open-set threshold calibrated on the training identities. Reported: the share of clusters given the
right persistent ID, false merges (a cluster put on another animal's ID) and false new IDs (an animal
seen before given a new ID). Writes benchmarks/results/cross_video_ids.json.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from reid_hub import from_pretrained
from reid_hub.data import tables as rdata
from reid_hub.evaluation.runner import machine_info
from reid_hub.models.table_embedding import embed_table
from reid_hub.gallery import Gallery, assign_clip
from reid_hub.scoring.calibration import calibrate_threshold

from common import SHARED, plan_videos  # the benchmarks' shared helpers

HERE = Path(__file__).resolve().parent




def run_species(emb: np.ndarray, labels: np.ndarray, threshold: float, videos: int, per_video: int,
                seed: int) -> dict:
    ids = sorted({lbl for lbl in labels if (labels == lbl).sum() >= 2})
    plan = [{i: emb[rows] for i, rows in clusters.items()} for clusters in plan_videos(labels, videos, seed)]
    first_id: dict[str, str] = {}
    counts = {"clusters": 0, "correct": 0, "false_merge": 0, "false_new": 0, "first_seen": 0, "reseen": 0}
    with tempfile.TemporaryDirectory() as tmp:
        g = Gallery(tmp, "bench", "bench", emb.shape[1])
        g.set_threshold(threshold)
        for v, clusters in enumerate(plan):
            clusters = dict(list(clusters.items())[:per_video]) if per_video else clusters
            if not clusters:
                continue
            res = assign_clip(g, clusters, video=f"video{v}")
            for a in res:
                truth = a.cluster
                counts["clusters"] += 1
                if truth in first_id:
                    counts["reseen"] += 1
                    if a.individual_id == first_id[truth]:
                        counts["correct"] += 1
                    elif a.is_new:
                        counts["false_new"] += 1
                    else:
                        counts["false_merge"] += 1
                else:
                    counts["first_seen"] += 1
                    if a.is_new:
                        counts["correct"] += 1
                        first_id[truth] = a.individual_id
                    else:  # merged into another animal: its next appearance counts as a first one again
                        counts["false_merge"] += 1
        g.close()
    n = max(1, counts["clusters"])
    return {**counts, "accuracy": counts["correct"] / n, "false_merge_rate": counts["false_merge"] / n,
            "false_new_rate": counts["false_new"] / n, "identities": len(ids), "videos": videos}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="multispecies-v1")
    ap.add_argument("--split", default="runs/candidates/lite0-imagenet/split.csv")
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--per-video", type=int, default=0, help="cap on clusters per video (0: all planned)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(HERE / "results" / "cross_video_ids.json"))
    args = ap.parse_args()
    model = from_pretrained(args.model)
    df = rdata.apply_split(rdata.load_sources([p.parent for p in sorted(SHARED.glob("*/metadata.csv"))]), args.split)
    report = {"model": args.model, "fingerprint": model.fingerprint(), "split": args.split, "species": {},
              "machine": machine_info()}
    for species, part in df.groupby("species"):
        unseen = part[part["split"] == "unseen"].reset_index(drop=True)
        train = part[part["split"] == "train"].reset_index(drop=True)
        e_train = embed_table(model, train)
        thr = calibrate_threshold(e_train @ e_train.T, train["label"].to_numpy())
        e = embed_table(model, unseen)
        r = run_species(e, unseen["label"].to_numpy(), thr, args.videos, args.per_video, args.seed)
        r["threshold"] = thr
        report["species"][species] = r
        print(f"{species:14s} clusters {r['clusters']:4d}  right ID {r['accuracy']:.3f}  false merges "
              f"{r['false_merge_rate']:.3f}  false new IDs {r['false_new_rate']:.3f}  (threshold {thr:.3f})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
