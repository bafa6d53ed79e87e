"""k estimation (the number of animals, left out) on pseudo-videos from the real photos of ../shared/data:
per species, 8 individuals (unseen identities first), 1,500 frames, each visible with probability 0.7 (so
frames often miss animals), one photo per sighting. Reports the estimate, runner-up, confidence and method
of `reid_hub.video.estimate_k`, and the clustering accuracy with the estimated k.
Writes benchmarks/results/k_estimation.json. Usage: python benchmarks/k_estimation.py [--model NAME]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from reid_hub import DEFAULT_MODEL, from_pretrained
from reid_hub.data import tables as rdata
from reid_hub.evaluation.metrics import clustering_metrics
from reid_hub.evaluation.runner import machine_info
from reid_hub.video import ClusterConfig, cluster_descriptors, make_pseudo_video

from common import SHARED, photo_descriptors  # the benchmarks' shared helpers

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--out", default=str(HERE / "results" / "k_estimation.json"))
    args = ap.parse_args()
    model = from_pretrained(args.model)
    df = rdata.split_by_identity(rdata.load_sources([p.parent for p in sorted(SHARED.glob("*/metadata.csv"))]),
                                 0.3, seed=0)
    rows = {}
    for species, part in df.groupby("species", sort=True):
        part = part.reset_index(drop=True)
        counts = part.groupby("label").size()
        unseen = [i for i in sorted(part.loc[part["split"] == "unseen", "label"].unique()) if counts[i] >= 2]
        seen = [i for i in sorted(part.loc[part["split"] == "train", "label"].unique()) if counts[i] >= 2]
        desc = photo_descriptors(part, {"reid": (model, False)}, 1, 0,
                                 HERE.parent / "runs" / "k_bench" / f"photos_{species}.npz")["reid"]
        pool = unseen[:] if len(unseen) >= args.k else unseen + seen
        photos = {i: np.flatnonzero(part["label"].to_numpy() == i) for i in pool}
        if len(pool) > args.k and len(unseen) < args.k:
            rng = np.random.default_rng(args.k)
            fill = [seen[j] for j in rng.choice(len(seen), args.k - len(unseen), replace=False)]
            photos = {i: photos[i] for i in unseen + fill}
        det = make_pseudo_video(photos, args.k, 1500, variants=1, visibility=0.7, seed=args.k)
        t0 = time.perf_counter()
        res = cluster_descriptors(desc[det["photo"].to_numpy()], det, ClusterConfig(k=None))
        rows[species] = {"true_k": args.k, **res.k_estimate.to_dict(), "seconds": round(time.perf_counter() - t0, 1),
                         "accuracy": round(clustering_metrics(det["identity"].to_numpy(), res.labels)["accuracy"], 4)}
        print(species, {k: v for k, v in rows[species].items() if k != "scores"}, flush=True)
    out = {"model": args.model, "rows": rows, "exact": f"{sum(r['k'] == r['true_k'] for r in rows.values())} of {len(rows)}",
           "machine": machine_info(), "date_run": time.strftime("%Y-%m-%d")}
    Path(args.out).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
