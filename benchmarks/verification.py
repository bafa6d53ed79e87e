"""Coarse-to-fine identification on unseen identities of every staged species: the global model alone,
SIFT alone (every pair), and for each local matcher the shortlist re-ranked by the matcher alone and by
the calibrated fusion; open-set balanced accuracy, ECE of P(same) and the cost per image and per pair.

Split: the identities multispecies-v2 never saw (benchmarks/splits/generalization_seed0.csv, seed 0,
30% of identities per species); fish queries only match other cameras. Calibration of the fused
scores is cross-fitted on the evaluated identities (two seeded halves; each half scored with the
calibration fitted on the other), the way a gallery calibrates on its own enrolled individuals.
Results: benchmarks/results/verification.json (written after every step; re-run skips finished ones).
Usage: python benchmarks/verification.py [--matchers sift,xfeat,...] [--species lion ...] [--depth 20|default]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from reid_hub import from_pretrained
from reid_hub.data import tables as rdata
from reid_hub.evaluation.metrics import open_set_metrics, retrieval_metrics
from reid_hub.evaluation.runner import machine_info
from reid_hub.evaluation.scorers import FusedScorer, TableFeatures, local_scorer
from reid_hub.models.loading import DEFAULT_MODEL
from reid_hub.scoring.matchers import create_matcher

from common import CROSS, SHARED  # the benchmarks' shared helpers

HERE = Path(__file__).resolve().parent
SPLIT = HERE / "splits" / "generalization_seed0.csv"
OUT = HERE / "results" / "verification.json"
FOLDERS = ["lion", "nyala", "chimpanzee", "cat_faces", "fish_fs48"]


def _metrics(sim: np.ndarray, labels: np.ndarray, groups: Any) -> dict[str, Any]:
    r = retrieval_metrics(sim, labels, groups=groups)
    out: dict[str, Any] = {"top1": r.top1, "top5": r.top5, "mAP": r.mAP, "queries": r.queries}
    if len(set(labels)) >= 4:
        o = open_set_metrics(sim, labels, None, seed=0, groups=groups)
        out["open_set"] = {k: o[k] for k in ("auroc", "balanced_accuracy", "known_accuracy", "new_accuracy")}
    return out


def _save(results: dict[str, Any]) -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_name(f".{OUT.name}.tmp")
    tmp.write_text(json.dumps(results, indent=1))
    os.replace(tmp, OUT)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--matchers", default="sift,xfeat,xfeat-lighterglue,aliked-lightglue")
    ap.add_argument("--species", nargs="*", help="dataset folders (default: every staged one)")
    ap.add_argument("--depth", default="default", help="shortlist depth, or 'default' (the matcher's for the "
                    "gallery's size: SIFT verifies galleries up to 500 images whole, else 100)")
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--no-sift-all-pairs", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if not (SHARED / "README.md").is_file():
        raise SystemExit(f"no staged data at {SHARED}")
    model = from_pretrained(args.model)
    results: dict[str, Any] = json.loads(OUT.read_text()) if OUT.is_file() else {}
    if results.get("model") != model.fingerprint():
        results = {"model": model.fingerprint(), "species": {}}
    results.update(model_name=args.model, machine=machine_info(), split=SPLIT.name, protocol=__doc__.split("\n\n")[1])
    for folder in args.species or FOLDERS:
        df = rdata.apply_split(rdata.load_metadata_folder(SHARED / folder), SPLIT)
        part = df[df["split"] == "unseen"].reset_index(drop=True)
        species = str(part["species"].iloc[0])
        labels = part["label"].to_numpy()
        groups = part[CROSS].astype(str).to_numpy() if CROSS in part and part[CROSS].notna().all() else None
        entry = results["species"].setdefault(species, {"images": len(part), "identities": int(part["label"].nunique())})
        shared_emb: dict[str, np.ndarray] = {}
        if "model" not in entry:
            feats = TableFeatures(create_matcher("sift"), model)
            t = time.perf_counter()
            e = feats.embeddings(part)
            entry["model"] = _metrics(e @ e.T, labels, groups)
            entry["model"]["embed_ms_per_image"] = 1000 * (time.perf_counter() - t) / len(part)
            _save(results)
        if "sift-all-pairs" not in entry and not args.no_sift_all_pairs:
            t = time.perf_counter()
            sim = local_scorer("sift")(part)
            entry["sift-all-pairs"] = _metrics(sim, labels, groups)
            entry["sift-all-pairs"]["seconds"] = time.perf_counter() - t
            _save(results)
        for name in args.matchers.split(","):
            depth = None if args.depth == "default" else int(args.depth)
            tag = f"{name}@{args.depth}"
            if f"fused-{tag}" in entry:
                continue
            feats = TableFeatures(create_matcher(name), model)
            feats._emb = shared_emb
            row: dict[str, Any] = {}
            for output in ("fused", "local"):
                scorer = FusedScorer(model, depth=depth, cross_column=CROSS if groups is not None else None,
                                     output=output, features=feats)
                sim = scorer(part)
                row[output] = {**_metrics(sim, labels, groups), "ece": scorer.last_report["ece"],
                               "shortlist": scorer.last_report["shortlist"]}
            c = feats.cost
            cost = {"extract_ms_per_image": 1000 * c["extract_s"] / max(1, c["extracted"]),
                    "match_ms_per_pair": 1000 * c["match_s"] / max(1, c["matched"]), "pairs": c["matched"]}
            entry[f"fused-{tag}"] = {**row["fused"], **cost}
            entry[f"local-{tag}"] = row["local"]
            logging.info("%s %s: model %.3f  local %.3f  fused %.3f  (%.0f ms/img, %.1f ms/pair)", species, tag,
                         entry["model"]["top1"], row["local"]["top1"], row["fused"]["top1"],
                         cost["extract_ms_per_image"], cost["match_ms_per_pair"])
            _save(results)
    _save(results)


if __name__ == "__main__":
    main()
