"""Model selection by generalization: candidates x (unseen identities, leave-one-species-out zero-shot).

For each candidate (a TrainConfig recipe) this trains, resumably, under runs/generalization/<candidate>/:
- `all/`: on the training identities of every staged species (identity split seed 0, 30% unseen);
- `without-<dataset>/`: the same recipe without that species at all (zero-shot on it).
Then it scores, in the same run and on the same images:
- unseen identities of every species (the 30% held out; fish across cameras with cross_column=camera);
- zero-shot: every image of species S with the model that never saw S;
- baselines: ImageNet EfficientNet-Lite0 pooled features at 224 px (and Lite2 at 260 px) and the released
  multispecies-v1; WiSE-FT mixes (alpha < 1) of each trained model, computed after training.
Results go to benchmarks/results/generalization.json (re-run to continue).
Usage: python benchmarks/generalization.py [--only CAND ...] [--skip-loso] [--data DIR ...]
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
import pandas as pd
import torch

from reid_hub import data as rdata
from reid_hub import from_pretrained
from reid_hub.evaluate import embed_table, evaluate_methods, imagenet_baseline, machine_info
from reid_hub.model import ReIDModel, create_model
from reid_hub.train import TrainConfig, interpolate_backbone, train
from reid_hub.trunk_cache import TrunkCache, load_clean_views

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"
CROSS = "camera"

_LITE0 = dict(model="lite0", pretrained=True, overrides={"preprocess": {"size": 224}})
_LITE2 = dict(model="lite2", pretrained=True, overrides={"preprocess": {"size": 260}})
CANDIDATES: dict[str, dict[str, Any]] = {
    # the last two stages, conv head and neck trained; stem + 5 stages frozen (cached per view)
    "lite0-f5": dict(**_LITE0, frozen_blocks=5, epochs=10, lr=1e-3, backbone_lr_mult=0.3),
    "lite0-f5-distill": dict(**_LITE0, frozen_blocks=5, epochs=10, lr=1e-3, backbone_lr_mult=0.3,
                             distill_weight=5.0),
    "lite0-f4-distill-ld": dict(**_LITE0, frozen_blocks=4, epochs=10, lr=1e-3, backbone_lr_mult=0.3,
                                distill_weight=5.0, layer_decay=0.7),
    "lite2-f5-distill": dict(**_LITE2, frozen_blocks=5, epochs=10, lr=1e-3, backbone_lr_mult=0.3,
                             distill_weight=5.0),
    "lite0-f5-distill-margin": dict(**_LITE0, frozen_blocks=5, epochs=10, lr=1e-3, backbone_lr_mult=0.3,
                                    distill_weight=5.0, subcenters=2, margin_a=0.3, scale=20.0),
}
WISE_ALPHAS = (0.5, 0.75)


def _embed(model: ReIDModel, df: pd.DataFrame, cache: Path) -> dict[str, np.ndarray]:
    """image_id -> embedding, cached as .npz beside the run (keyed by the model's fingerprint)."""
    fp = model.fingerprint()
    f = cache / f"emb-{fp}.npz"
    if f.is_file():
        z = np.load(f, allow_pickle=True)
        return dict(zip(z["ids"], z["emb"]))
    cache.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    emb = embed_table(model, df, batch_size=16)
    logging.info("embedded %d images with %s in %.0f s", len(df), model.config.name, time.time() - t0)
    np.savez(f, ids=np.asarray(df["image_id"]), emb=emb)
    return dict(zip(df["image_id"], emb))


@torch.inference_mode()
def _embed_cached(model: ReIDModel, paths: list[Path], ids: list[str], frozen: int) -> dict[str, np.ndarray]:
    """Embeddings from the cached clean trunk maps: exact for a model whose first `frozen` stages are the
    ones the cache was built with (every candidate here keeps them frozen)."""
    model.eval()
    out = []
    for start in range(0, len(paths), 64):
        h = load_clean_views(paths[start:start + 64]).contiguous(memory_format=torch.channels_last)
        out.append(model.head(model.pooled_from_trunk(h, frozen)).float().numpy())
    return dict(zip(ids, np.concatenate(out)))


def _raw(model: ReIDModel, df: pd.DataFrame, cache: Path, tag: str) -> dict[str, np.ndarray]:
    f = cache / f"raw-{tag}.npz"
    if f.is_file():
        z = np.load(f, allow_pickle=True)
        return dict(zip(z["ids"], z["emb"]))
    cache.mkdir(parents=True, exist_ok=True)
    emb = embed_table(model, df, batch_size=16, raw_features=True)
    np.savez(f, ids=np.asarray(df["image_id"]), emb=emb)
    return dict(zip(df["image_id"], emb))


def _scorer(table: dict[str, np.ndarray]):
    def score(part: pd.DataFrame) -> np.ndarray:
        e = np.stack([table[i] for i in part["image_id"]]).astype(np.float32)
        e /= np.linalg.norm(e, axis=1, keepdims=True) + 1e-12
        return e @ e.T
    return score


def _summ(res: dict[str, Any], method: str) -> dict[str, Any]:
    out = {}
    for sp, entry in res["species"].items():
        m = entry[method]
        out[sp] = {"top1": round(m["top1"], 4), "top5": round(m["top5"], 4), "mAP": round(m["mAP"], 4),
                   "queries": m["queries"]}
        if "open_set" in m:
            out[sp]["open_set"] = {k: round(float(m["open_set"][k]), 4) for k in ("auroc", "balanced_accuracy")}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", nargs="*", default=[str(p.parent) for p in sorted(SHARED.glob("*/metadata.csv"))])
    ap.add_argument("--only", nargs="*", default=list(CANDIDATES))
    ap.add_argument("--skip-loso", action="store_true")
    ap.add_argument("--runs", default="runs/generalization")
    ap.add_argument("--out", default=str(HERE / "results" / "generalization.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    runs = Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    df = rdata.split_by_identity(rdata.load_sources(args.data), 0.3, 0)
    # the species multispecies-v1 was trained on keep its exact split (its unseen identities stay unseen, so v1
    # is scored only on identities it never saw); new species take the seeded per-species draw
    v1_split = json.loads((HERE / "results" / "candidates.json").read_text())["split"]
    for sp, entry in v1_split.items():
        rows = df["species"] == sp
        df.loc[rows, "split"] = np.where(df.loc[rows, "identity"].isin(entry["unseen_identities"]), "unseen", "train")
    split_file = runs / "split.csv"
    df[["image_id", "dataset", "species", "identity", "split"]].to_csv(split_file, index=False)
    unseen = df[df["split"] == "unseen"]
    species_of = dict(zip(df["dataset"], df["species"]))
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.is_file() else {}
    results.update({"protocol": {
        "unseen": "30% of identities per species held out (split seed 0; the four species of multispecies-v1 keep "
                  "v1's own split, so v1 is scored on identities it never saw); query vs all other images of its species "
                  f"among the held-out identities; fish ({CROSS} column) queries only match other cameras",
        "zero_shot": "a model trained without species S, evaluated on every image of S (same rules)",
        "imagenet": "EfficientNet-Lite pooled backbone features at the weights' native size (lite0 224, lite2 260)",
    }, "data": {d: {"species": species_of[d], "images": int((df.dataset == d).sum()),
                    "identities": int(df[df.dataset == d]["identity"].nunique())} for d in species_of}})
    cache = runs / "embeddings"

    def save() -> None:
        results["machine"] = machine_info()
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(json.dumps(results, indent=2))
        os.replace(tmp, out)

    def evaluate(tables: dict[str, dict[str, np.ndarray]], target: pd.DataFrame) -> dict[str, Any]:
        res = evaluate_methods(target, {k: _scorer(v) for k, v in tables.items()}, cross_column=CROSS)
        return {k: _summ(res, k) for k in tables}

    # baselines once
    if results.get("split_version") != 2:  # baselines of an earlier split are stale
        results = {k: v for k, v in results.items() if k not in ("baselines", "candidates")}
        results["split_version"] = 2
    results.setdefault("candidates", {})
    if "baselines" not in results:
        base = {"imagenet-lite0": _raw(imagenet_baseline("lite0"), df, cache, "imagenet-lite0-224"),
                "imagenet-lite2": _raw(imagenet_baseline("lite2"), df, cache, "imagenet-lite2-260"),
                "multispecies-v1": _embed(from_pretrained("multispecies-v1"), df, cache)}
        results["baselines"] = {"unseen": evaluate(base, unseen), "zero_shot": evaluate(base, df)}
        save()

    for name in args.only:
        spec = CANDIDATES[name]
        entry = results["candidates"].setdefault(name, {"recipe": spec})
        folder = runs / name
        init = create_model(spec["model"], pretrained=True, **spec.get("overrides", {}))
        frozen = spec["frozen_blocks"]
        paths = TrunkCache(init, frozen, views=spec.get("views", 4), seed=0).build(df, progress=True)
        ids = list(df["image_id"])
        todo = [("all", [])] + ([] if args.skip_loso else [(f"without-{d}", [species_of[d]]) for d in species_of])
        for tag, excluded in todo:
            if tag in entry and all(f"wise{a}" in entry[tag] for a in WISE_ALPHAS):
                continue
            run = folder / tag
            t0 = time.time()
            cfg = TrainConfig(data=args.data, out_dir=str(run), seed=0, unseen_fraction=0.3, save_dtype="float16",
                              exclude_species=excluded, checkpoint_every=25, **spec)
            if not (run / "split.csv").is_file():
                run.mkdir(parents=True, exist_ok=True)
                (run / "split.csv").write_text(split_file.read_text())
            model_dir = train(cfg, progress=False)
            wall = time.time() - t0
            metrics = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
            model = from_pretrained(model_dir)
            tables = {"model": _embed_cached(model, paths, ids, frozen)}
            for a in WISE_ALPHAS:
                mixed = interpolate_backbone(from_pretrained(model_dir), init, a)
                tables[f"wise{a}"] = _embed_cached(mixed, paths, ids, frozen)
            target = unseen if tag == "all" else df[df["species"].isin(excluded)]
            entry[tag] = {**evaluate(tables, target), "train_steps": metrics[-1]["step"],
                          "train_wall_s_this_session": round(wall), "train_elapsed_s": metrics[-1]["elapsed_s"]}
            logging.info("%s/%s: %s", name, tag, json.dumps({k: {s: v["top1"] for s, v in entry[tag][k].items()}
                                                            for k in tables}))
            save()


if __name__ == "__main__":
    main()
