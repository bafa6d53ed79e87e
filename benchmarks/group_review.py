"""Review by individual against review by pair, in simulated human time, on the staged species (both settings of
benchmarks/discovery.py: `imagenet`, every image with ImageNet Lite0 features; `v2-unseen`, the default model on
the identities it never saw). Per species: groups found at 0 answers against the true number and the estimated
number of animals with its interval; ARI after 2, 5 and 10 minutes of simulated reviewer time (3 s per action plus
1.5 s per image shown) for group review, pair questions and random pairs; the adapter's leave-one-out top-1 on a
fixed 30% of identities no question touched (`--held-out`), with and without it. The grouping here uses the global
embedding alone (no local verification), so that every species runs in minutes; fish_fs48 without its sequence
column. Writes results/group_review.json (resumable). Usage: python benchmarks/group_review.py [--minutes 10]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from reid_hub.data import tables as rdata
from reid_hub.discovery import AnswerLog, Discovery, DiscoveryConfig, simulate_reviewer
from reid_hub.evaluation.runner import machine_info

from common import (DISCOVERY_SPECIES as SPECIES, DISCOVERY_SPLIT as SPLIT, RESULTS, SHARED,
                    discovery_embeddings as embeddings, label_chosen_baseline)  # the benchmarks' shared helpers

RUNS = {"group": ("group", "gain", False), "pair": ("pair", "gain", False), "random": ("pair", "random", False)}
MARKS = (120, 300, 600)


def at_seconds(points: list[dict], seconds: float) -> float:
    """ARI after `seconds` of simulated time (the last point reached by then)."""
    got = [p for p in points if p["seconds"] <= seconds + 1e-9]
    return got[-1]["ari"]


def data(ds: str, setting: str) -> tuple[pd.DataFrame, np.ndarray]:
    df = rdata.load_metadata_folder(SHARED / ds)
    e = embeddings(ds, df, setting)
    if setting == "v2-unseen":
        keep = df["image_id"].isin(set(pd.read_csv(SPLIT).query("split == 'unseen'")["image_id"])).to_numpy()
        df, e = df[keep].reset_index(drop=True), e[keep]
    return df, e


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--species", nargs="*", default=SPECIES)
    ap.add_argument("--settings", nargs="*", default=["v2-unseen", "imagenet"])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--adapter-species", nargs="*", default=["cat_faces", "chimpanzee"])
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    out = RESULTS / "group_review.json"
    res = json.loads(out.read_text()) if out.is_file() else {"runs": {}}
    res.update({"machine": machine_info(), "minutes": args.minutes, "seconds_per_image": 1.5,
                "seconds_per_action": 3.0, "verification": "none (global embedding only)"})
    for setting in args.settings:
        for ds in args.species:
            key = f"{setting}/{ds}"
            if key in res["runs"] and not args.force:
                continue
            df, e = data(ds, setting)
            y = df["identity"].to_numpy()
            entry = {"images": len(df), "animals": int(len(set(y))),
                     "label_chosen_baseline": label_chosen_baseline(e, y)}
            for name, (review, strategy, adapter) in RUNS.items():
                with tempfile.TemporaryDirectory() as tmp:
                    t0 = time.perf_counter()
                    d = Discovery(df, e, DiscoveryConfig(strategy=strategy, adapter=adapter),
                                  answers=AnswerLog(Path(tmp) / "a.sqlite"), keys=df["image_id"].tolist())
                    if name == "group":
                        entry["groups_at_0"] = int(d.labels.max()) + 1
                        entry["animals_estimate"] = d.animals()
                        entry["ari_at_0"] = float(adjusted_rand_score(y, d.labels))
                    budget = int(args.minutes * 60 / (6 if review == "pair" else 9)) + 10  # actions enough
                    timings: list[float] = []
                    pts = simulate_reviewer(d, y, budget, 5 if review == "group" else 10, progress=False,
                                            review=review, timings=timings)
                    pts = [p for p in pts if p["seconds"] <= args.minutes * 60 + 60]
                    entry[name] = {"points": pts, "ari_at": {str(m): at_seconds(pts, m) for m in MARKS},
                                   "run_seconds": round(time.perf_counter() - t0, 1),
                                   "seconds_per_action_median": float(np.median(timings)) if timings else None}
            if ds in args.adapter_species:  # the adapter on identities no question touched, same seed, same split
                for adapter in (True, False):
                    with tempfile.TemporaryDirectory() as tmp:
                        d = Discovery(df, e, DiscoveryConfig(adapter=adapter), answers=AnswerLog(Path(tmp) / "a.sqlite"),
                                      keys=df["image_id"].tolist())
                        pts = simulate_reviewer(d, y, 100, 10, progress=False, held_out=0.3)
                        entry[f"held_out_adapter_{'on' if adapter else 'off'}"] = {
                            k: pts[-1].get(k) for k in ("top1_held_out", "top1_held_out_embedding", "ari")} | {
                            "adapter": {s: a.report for s, a in d.adapters.items()}}
            res["runs"][key] = entry
            tmp_out = out.with_suffix(".tmp")
            tmp_out.write_text(json.dumps(res, indent=2, default=str))
            tmp_out.replace(out)
            print(key, entry["images"], entry["animals"], "groups", entry["groups_at_0"], entry["animals_estimate"],
                  {n: entry[n]["ari_at"] for n in RUNS}, flush=True)


if __name__ == "__main__":
    main()
