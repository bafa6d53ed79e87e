"""Evaluate the trained release candidates on the unseen identities of their shared split.

Baselines (ImageNet Lite0/Lite2 backbones without re-ID training, SIFT + RANSAC) are computed
once on the same split. Writes benchmarks/results/candidates.json (+ .png) and prints a table.
Usage: python benchmarks/evaluate_candidates.py [--runs runs/candidates] [--only NAME ...]
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from reid_hub import from_pretrained
from reid_hub.data import tables as rdata
from reid_hub.evaluation.runner import embedding_scorer, evaluate_methods, machine_info, sift_similarity, write_results
from reid_hub.models.model import create_model

HERE = Path(__file__).resolve().parent


def cached(name: str, scorer, cache_dir: Path):
    """Wrap a scorer so its similarity matrix per (method, image set) is computed once and reused."""
    import hashlib

    import numpy as np

    def score(part):
        key = hashlib.sha256("|".join(part["image_id"]).encode()).hexdigest()[:12]
        f = cache_dir / f"{name}-{key}.npy"
        if f.is_file():
            return np.load(f)
        sim = scorer(part)
        cache_dir.mkdir(parents=True, exist_ok=True)
        np.save(f, sim)
        return sim
    return score


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="runs/candidates")
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results" / "candidates.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    runs = sorted(p for p in Path(args.runs).iterdir() if (p / "model" / "model.safetensors").is_file())
    if args.only:
        runs = [r for r in runs if r.name in args.only]
    if not runs:
        raise SystemExit("no finished candidate runs")
    cfg = json.loads((runs[0] / "config.json").read_text())
    df = rdata.apply_split(rdata.load_sources(cfg["data"]), runs[0] / "split.csv")
    for r in runs[1:]:
        other = rdata.apply_split(rdata.load_sources(cfg["data"]), r / "split.csv")
        if other["split"].tolist() != df["split"].tolist():
            raise SystemExit(f"{r.name} was trained on another split")
    cache = Path(args.runs) / ".eval_cache"
    methods = {r.name: cached(r.name, embedding_scorer(from_pretrained(r / "model")), cache) for r in runs}
    if not args.no_baselines:
        methods["imagenet-lite0"] = cached("imagenet-lite0", embedding_scorer(create_model("lite0", pretrained=True),
                                                                              raw_features=True), cache)
        methods["imagenet-lite2"] = cached("imagenet-lite2", embedding_scorer(create_model("lite2", pretrained=True),
                                                                              raw_features=True), cache)
        methods["sift"] = cached("sift", sift_similarity, cache)
    unseen, calib = df[df["split"] == "unseen"], df[df["split"] == "train"]
    calib_methods = {k: v for k, v in methods.items() if k != "sift"}
    results = evaluate_methods(unseen, methods, calib_df=calib, calib_methods=calib_methods)
    results["split"] = {s: {"unseen_identities": sorted(p["identity"].unique().tolist()),
                            "unseen_images": len(p),
                            "train_identities": int(calib[calib["species"] == s]["label"].nunique())}
                        for s, p in unseen.groupby("species")}
    results["training"] = {}
    for r in runs:
        lines = (r / "metrics.jsonl").read_text().splitlines()
        last = json.loads(lines[-1]) if lines else {}
        results["training"][r.name] = {"steps": last.get("step"), "train_seconds_last_session": last.get("elapsed_s"),
                                       "config": json.loads((r / "config.json").read_text())}
    results["machine"] = machine_info()
    js, png = write_results(results, args.out)
    print(f"{'species':14s} " + " ".join(f"{m[:16]:>16s}" for m in methods))
    for s, e in results["species"].items():
        print(f"{s:14s} " + " ".join(f"{e[m]['top1']:7.3f}/{e[m]['mAP']:.3f}" for m in methods))
    print(f"{'average':14s} " + " ".join(f"{results['average'][m]['top1']:7.3f}/{results['average'][m]['mAP']:.3f}"
                                         for m in methods))
    print(f"(top-1/mAP on unseen identities) wrote {js} and {png}")


if __name__ == "__main__":
    main()
