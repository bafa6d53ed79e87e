"""Discovery with people in the loop, on the staged species: grouping an unlabelled collection, then a simulated
reviewer answering questions (ours vs random, with and without the adapter).

Two settings (--setting): `imagenet`, ImageNet EfficientNet-Lite0 (pooled features, no re-ID training) on every
image: no staged species was seen in its training, so every species is unseen, as the issue asks of a
leave-one-species-out model (the released v2 was trained on these five species; its LOSO runs are not kept
between machines, and its zero-shot top-1 is within 0.005 of ImageNet's); `v2-unseen`, the default model on the
identities it never saw (the setting of the hidden unseen-lion and unseen-nyala sets). Per species:
- baseline: cosine average linkage over all pairs at the distance threshold that maximises ARI *with the labels*;
- label-free: the default threshold, and the threshold chosen on the four other species (leave-one-species-out);
- curves: the simulated reviewer (`Discovery` + `simulate_reviewer`, the code path of `reid-hub discover
  --answers`) for {gain, random} x {adapter, none}, points after every batch.
Results: benchmarks/results/discovery.json and discovery_v2_unseen.json (resumable: species already there are kept
unless --force). Runs about 20 minutes per setting on 2 cores.
Usage: python benchmarks/discovery.py [--species lion ...] [--answers 200] [--batch 10] [--force] [--report]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from reid_hub.data import tables as rdata
from reid_hub.discovery import AnswerLog, Constraints, Discovery, DiscoveryConfig, simulate_reviewer
from reid_hub.discovery.graph import build_graph
from reid_hub.discovery.grouping import constrained_average_linkage
from reid_hub.discovery.local_evidence import LocalEvidence, VerifyConfig, verify_cached
from reid_hub.evaluation.runner import machine_info

from common import (DISCOVERY_SETTINGS as SETTINGS, DISCOVERY_SPECIES as SPECIES, DISCOVERY_SPLIT as SPLIT, RESULTS, SHARED,
                    discovery_embeddings as embeddings, label_chosen_baseline)  # the benchmarks' shared helpers

GRID = np.round(np.arange(0.025, 0.6, 0.025), 3)


def local_evidence(ds: str, df: pd.DataFrame, e: np.ndarray, setting: str) -> LocalEvidence:
    """The verified pairs of a dataset (reid-hub discover's default verification), cached like the embeddings."""
    cache = Path(os.environ.get("REID_HUB_CACHE", Path.home() / ".cache" / "reid-hub")) / "discovery"
    return verify_cached(cache / f"local-{setting}-{ds}.npz", df, e, df["image_id"].tolist(), VerifyConfig())


def threshold_sweep(e: np.ndarray, y: np.ndarray, local: LocalEvidence, centre: float = VerifyConfig().centre,
                    structure: Constraints | None = None) -> list[float]:
    """ARI at every grouping threshold on the grid, with local evidence (centre: where it alone says P = 0.5;
    inf: the global embedding alone)."""
    g = build_graph(e)
    if np.isfinite(centre) and len(local):
        g = g.with_local(e, local.i, local.j, local.p_same(VerifyConfig(centre=centre)))
    return [float(adjusted_rand_score(y, constrained_average_linkage(len(e), g.i, g.j, g.similarity, float(t),
                                                                     structure))) for t in GRID]


#: structure columns a user of these collections has: fish_fs48's sequences each film one fish (SOURCE.md)
TRACKS = {"fish_fs48": "sequence"}
#: centres of the local evidence's logistic compared (inf: no verification)
CENTRES = (10.0, 12.0, 15.0, 20.0, 30.0, float("inf"))


POINTS = (0, 10, 25, 50, 100, 200)


def _at(points: list[dict], n: int, key: str) -> str:
    """The value at `n` answers (the last point at or below n: a run that ran out of questions stays put)."""
    got = [p for p in points if p["answers"] <= n]
    v = got[-1][key] if got else None
    return "n/a" if v is None or v != v else f"{v:.3f}"


def report(res: dict) -> str:
    """Markdown tables of a results file: 0-answer ARI against the baselines, then the curves."""
    lines = ["| species | images / animals | label-chosen baseline ARI | ours, default | ours, no verification |"
             " ours, LOSO threshold | best threshold with labels | LOSO centre |", "|---|---|---|---|---|---|---|---|"]
    for ds, e in res["species"].items():
        lf = e["label_free"]
        lines.append(f"| {ds} | {e['images']} / {e['individuals']} | {e['baseline_label_chosen']['ari']:.3f} | "
                     f"{lf['ari_default']:.3f} | {lf.get('ari_no_verification', float('nan')):.3f} | "
                     f"{lf['ari_loso']:.3f} (t={lf['loso_threshold']}) | "
                     f"{lf['ari_best_with_labels']:.3f} (t={lf['best_threshold_with_labels']}) | "
                     f"{lf.get('loso_centre', 'n/a')} |")
    for key in ("ari", "top1_unasked"):
        lines += ["", f"{key} after N simulated answers:", "",
                  "| species | questions | " + " | ".join(str(n) for n in POINTS) + " |",
                  "|---|---|" + "---|" * len(POINTS)]
        for ds, e in res["species"].items():
            for name, c in e["curves"].items():
                lines.append(f"| {ds} | {name} | " + " | ".join(_at(c["points"], n, key) for n in POINTS) + " |")
    lines += ["", "| species | questions | seconds per answer (record + regroup): median, max | run seconds |",
              "|---|---|---|---|"]
    for ds, e in res["species"].items():
        for name, c in e["curves"].items():
            per = c.get("seconds_per_answer")
            if per is None:  # files written before 2026-12-01 13:30 kept one mean per batch in the points
                batch = [p["seconds_per_answer"] for p in c["points"] if "seconds_per_answer" in p]
                per = {"median": float(np.median(batch)), "max": float(np.max(batch))}
            lines.append(f"| {ds} | {name} | {per['median']:.3f}, {per['max']:.3f} | {c['seconds']} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--species", nargs="*", default=SPECIES)
    ap.add_argument("--answers", type=int, default=200)
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--adapter-species", nargs="*", default=["lion", "nyala"],
                    help="species whose curves are also run with the adapter (slow: it retrains every batch)")
    ap.add_argument("--setting", choices=sorted(SETTINGS), default="imagenet")
    ap.add_argument("--out", default=None, help="default: results/discovery.json (imagenet) or "
                                                 "results/discovery_v2_unseen.json")
    ap.add_argument("--report", action="store_true", help="print the results file as Markdown tables and stop")
    args = ap.parse_args()
    out = Path(args.out or RESULTS / ("discovery.json" if args.setting == "imagenet" else "discovery_v2_unseen.json"))
    if args.report:
        print(report(json.loads(out.read_text())))
        return
    logging.basicConfig(level=logging.WARNING)
    res = json.loads(out.read_text()) if out.is_file() else {"species": {}}
    res.update({"embedding": SETTINGS[args.setting],
                "machine": machine_info(), "answers": args.answers, "batch": args.batch})
    data = {}
    for ds in SPECIES:
        df = rdata.load_metadata_folder(SHARED / ds)
        e = embeddings(ds, df, args.setting)
        if args.setting == "v2-unseen":
            unseen = set(pd.read_csv(SPLIT).query("split == 'unseen'")["image_id"])
            keep = df["image_id"].isin(unseen).to_numpy()
            df, e = df[keep].reset_index(drop=True), e[keep]
        data[ds] = (df, e, local_evidence(ds, df, e, args.setting))
    sweeps = res.setdefault("threshold_sweep", {"grid": GRID.tolist()})
    centres = res.setdefault("centre_sweep", {"centres": [str(c) for c in CENTRES]})
    for ds in SPECIES:
        if ds not in sweeps:
            sweeps[ds] = threshold_sweep(data[ds][1], data[ds][0]["identity"].to_numpy(), data[ds][2])
        if ds not in centres:  # ARI at the default threshold for each centre: is the default centre LOSO-safe?
            t = DiscoveryConfig().threshold
            centres[ds] = [threshold_sweep(data[ds][1], data[ds][0]["identity"].to_numpy(), data[ds][2], c)
                           [int(np.argmin(abs(GRID - t)))] for c in CENTRES]
    for ds in args.species:
        if ds in res["species"] and not args.force:
            continue
        df, e, local = data[ds]
        y = df["identity"].to_numpy()
        others = [s for s in SPECIES if s != ds]
        loso_t = float(GRID[int(np.argmax(np.mean([sweeps[s] for s in others], axis=0)))])
        entry = {"images": len(df), "individuals": int(len(set(y))),
                 "baseline_label_chosen": label_chosen_baseline(e, y),
                 "label_free": {"default_threshold": DiscoveryConfig().threshold,
                                "ari_default": sweeps[ds][int(np.argmin(abs(GRID - DiscoveryConfig().threshold)))],
                                "loso_threshold": loso_t, "ari_loso": sweeps[ds][int(np.argmin(abs(GRID - loso_t)))],
                                "best_threshold_with_labels": float(GRID[int(np.argmax(sweeps[ds]))]),
                                "ari_best_with_labels": float(max(sweeps[ds])),
                                "ari_no_verification": centres[ds][-1],
                                "loso_centre": CENTRES[int(np.argmax(np.mean([centres[s] for s in others], axis=0)))],
                                "verified_pairs": len(local)},
                 "curves": {}}
        runs = [(f"{strategy}{'+adapter' if adapter else ''}", strategy, adapter, None)
                for strategy in ("gain", "random")
                for adapter in ((True, False) if ds in args.adapter_species and strategy == "gain" else (False,))]
        if ds in TRACKS:  # the collection's own structure, as a user would pass it with --track-column
            runs += [(f"{strategy}, tracks", strategy, False, TRACKS[ds]) for strategy in ("gain", "random")]
        for name, strategy, adapter, track in runs:
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                d = Discovery(df, e, DiscoveryConfig(strategy=strategy, adapter=adapter),
                              Constraints.from_columns(df, track) if track else None,
                              answers=AnswerLog(Path(tmp) / "answers.sqlite"), keys=df["image_id"].tolist(),
                              local=local)
                timings: list[float] = []
                curve = simulate_reviewer(d, y, args.answers, args.batch, progress=False, timings=timings)
                entry["curves"][name] = {"points": curve, "seconds": round(time.perf_counter() - t0, 1),
                                         "seconds_per_answer": {"median": float(np.median(timings)),
                                                                "max": float(np.max(timings))}}
            print(ds, name, [(c["answers"], round(c["ari"], 3), c["top1_unasked"]) for c in curve
                             if c["answers"] in (0, 10, 20, 30, 50, 100, 200)], flush=True)
        res["species"][ds] = entry
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(res, indent=2))
        tmp.replace(out)
        print(ds, "baseline", entry["baseline_label_chosen"], "label-free", entry["label_free"], flush=True)


if __name__ == "__main__":
    main()
