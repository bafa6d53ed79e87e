"""Model selection by generalization: candidates x (unseen identities, leave-one-species-out zero-shot).

For each candidate (a TrainConfig recipe) this trains, resumably, under runs/generalization/<candidate>/:
- `all/`: on the training identities of every staged species (identity split seed 0, 30% unseen);
- `without-<dataset>/`: the same recipe without that species at all (zero-shot on it).
Then it scores, in the same run and on the same images:
- unseen identities of every species (the 30% held out; fish across cameras with cross_column=camera);
- zero-shot: every image of species S with the model that never saw S;
- baselines: ImageNet EfficientNet-Lite0 pooled features at 224 px (and Lite2 at 260 px) and the released
  multispecies-v1; WiSE-FT mixes (alpha < 1) of each trained model, computed after training.
With --per-species it also trains the recipe on each species alone (`only-<dataset>/`, the same epochs over
that species' training images, so the five runs together cost one multi-species run) and scores each on its own
species' unseen identities: the MiewID question, does one multi-species model beat per-species models here?
Results go to benchmarks/results/generalization.json (re-run to continue).
Usage: python benchmarks/generalization.py [--only CAND ...] [--skip-loso | --loso DATASET ...] [--per-species]
       [--data DIR ...]; python benchmarks/generalization.py --release CAND:VARIANT [--name NAME] [--keep-weights]
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

from reid_hub import from_pretrained
from reid_hub.evaluation.runner import evaluate_methods, imagenet_baseline, machine_info
from reid_hub.models.model import ReIDModel, create_model, join_general
from reid_hub.training.loop import TrainConfig, interpolate_backbone, train
from reid_hub.training.trunk_cache import TrunkCache, load_clean_views

from common import (CROSS, SHARED, cosine_scorer, dataset_license, embed_table_cached,  # the benchmarks' shared helpers
                    species_summary, staged_split)

HERE = Path(__file__).resolve().parent

_LITE0 = dict(model="lite0", pretrained=True, overrides={"preprocess": {"size": 224}})
_LITE2 = dict(model="lite2", pretrained=True, overrides={"preprocess": {"size": 260}})
CANDIDATES: dict[str, dict[str, Any]] = {
    # the last two stages, conv head and neck trained; stem + 5 stages frozen (cached per view)
    "lite0-f5": dict(**_LITE0, frozen_blocks=5, epochs=10, lr=1e-3, backbone_lr_mult=0.3),
    "lite0-f5-distill": dict(**_LITE0, frozen_blocks=5, epochs=10, lr=1e-3, backbone_lr_mult=0.3,
                             distill_weight=5.0),
    # no projection: the embedding is the BN-necked pooled features, kept near ImageNet's by a strong distillation
    "lite0-f5-noproj-distill20": dict(model="lite0", pretrained=True,
                                      overrides={"preprocess": {"size": 224}, "embedding_dim": None},
                                      frozen_blocks=5, epochs=6, lr=1e-3, backbone_lr_mult=0.3, distill_weight=20.0),
    "lite0-f4-distill-ld": dict(**_LITE0, frozen_blocks=4, epochs=10, lr=1e-3, backbone_lr_mult=0.3,
                                distill_weight=5.0, layer_decay=0.7),
    "lite2-f5-distill": dict(**_LITE2, frozen_blocks=5, epochs=10, lr=1e-3, backbone_lr_mult=0.3,
                             distill_weight=5.0),
    "lite0-f5-distill-margin": dict(**_LITE0, frozen_blocks=5, epochs=10, lr=1e-3, backbone_lr_mult=0.3,
                                    distill_weight=5.0, subcenters=2, margin_a=0.3, scale=20.0),
}
WISE_ALPHAS = (0.5, 0.75)
GENERAL_WEIGHTS = (0.7, 1.0, 1.5, 2.0, 3.0)
VARIANTS = ["model"] + [f"wise{a}" for a in WISE_ALPHAS] + [f"general{w}" for w in GENERAL_WEIGHTS]






@torch.inference_mode()
def _embed_cached(model: ReIDModel, paths: list[Path], frozen: int, raw: bool = False) -> np.ndarray:
    """Embeddings (`raw`: the pooled backbone features, before projection and neck) from the cached clean trunk maps:
    exact for a model whose first `frozen` stages are the ones the cache was built with (every candidate here
    keeps them frozen)."""
    model.eval()
    out = []
    for start in range(0, len(paths), 64):
        h = load_clean_views(paths[start:start + 64]).contiguous(memory_format=torch.channels_last)
        pooled = model.pooled_from_trunk(h, frozen)
        out.append((pooled if raw else model.head(pooled)).float().numpy())
    return np.concatenate(out)






def _variant_model(runs: Path, cand: str, variant: str, tag: str = "all") -> ReIDModel:
    """The trained model of a candidate run, WiSE-mixed for a 'wiseA' variant."""
    spec = CANDIDATES[cand]
    model = from_pretrained(runs / cand / tag / "model")
    if variant.startswith("general"):
        init = create_model(spec["model"], pretrained=True, **spec.get("overrides", {}))
        model.backbone, trained = init.backbone, model.backbone  # the branch copies the ImageNet upper stages
        model.attach_general_branch(spec["frozen_blocks"], float(variant[7:]))
        model.backbone = trained
    if variant.startswith("wise"):
        init = create_model(spec["model"], pretrained=True, **spec.get("overrides", {}))
        model = interpolate_backbone(model, init, float(variant[4:]))
    return model


def candidate_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per candidate and variant: mean top-1/mAP on unseen identities and zero-shot, and the
    worst zero-shot margin over ImageNet Lite0 (the selection criterion)."""
    base_zs = results["baselines"]["zero_shot"]["imagenet-lite0"]
    rows = []
    for name in ("imagenet-lite0", "imagenet-lite2", "multispecies-v1"):
        un, zs = results["baselines"]["unseen"][name], results["baselines"]["zero_shot"][name]
        rows.append({"candidate": name, "unseen top-1": np.mean([v["top1"] for v in un.values()]),
                     "unseen mAP": np.mean([v["mAP"] for v in un.values()]),
                     "zero-shot top-1": np.mean([v["top1"] for v in zs.values()]) if name != "multispecies-v1" else "",
                     "worst zero-shot margin": "", "train min": ""})
    for cand, entry in results["candidates"].items():
        if "all" not in entry:
            continue
        loso = {t: e for t, e in entry.items() if t.startswith("without-")}
        for variant in [k for k in entry["all"] if k in VARIANTS]:
            un = entry["all"][variant]
            zs = {sp: v for e in loso.values() for sp, v in e.get(variant, {}).items()}
            wall = entry["all"]["train_elapsed_s"] + sum(e["train_elapsed_s"] for e in loso.values())
            rows.append({"candidate": f"{cand} ({variant})", "unseen top-1": np.mean([v["top1"] for v in un.values()]),
                         "unseen mAP": np.mean([v["mAP"] for v in un.values()]),
                         "zero-shot top-1": np.mean([v["top1"] for v in zs.values()]) if len(zs) == len(un) else "",
                         "worst zero-shot margin": min(v["top1"] - base_zs[sp]["top1"] for sp, v in zs.items())
                         if len(zs) == len(un) else "",
                         "train min": round(wall / 60, 1)})
    return rows


def per_species_rows(results: dict[str, Any], cand: str) -> list[dict[str, Any]]:
    """One row per species with a per-species run (`only-<dataset>`): its unseen-identity top-1/mAP beside the
    multi-species model's (the re-ID branch alone, so only the training data differs)."""
    entry = results["candidates"].get(cand, {})
    rows = []
    for tag, e in sorted(entry.items()):
        if not tag.startswith("only-") or "model" not in e:
            continue
        for sp, v in e["model"].items():
            multi = entry["all"]["model"][sp]
            rows.append({"species": sp, "per-species top-1": v["top1"], "multi-species top-1": multi["top1"],
                         "per-species mAP": v["mAP"], "multi-species mAP": multi["mAP"],
                         "top-1 gain of multi-species": round(multi["top1"] - v["top1"], 4),
                         "per-species train min": round(e["train_elapsed_s"] / 60, 1)})
    if rows:
        total = round(sum(r["per-species train min"] for r in rows), 1)
        rows.append({"species": "mean (train min: sum)", **{k: round(float(np.mean([r[k] for r in rows])), 4)
                                                          for k in rows[0] if k != "species"},
                     "per-species train min": total})
    return rows


def release(results: dict[str, Any], runs: Path, cand: str, variant: str, name: str,
            keep_weights: bool = False) -> Path:
    """Save the chosen candidate as model_cards/<name>/ (fp16) with its card. `keep_weights`: the weights of the
    model already released as <name> (the same candidate and variant) are kept and only the card's tables are
    refreshed from `results`, for when the run folder is gone."""
    from reid_hub import ModelCard, save_pretrained
    from reid_hub.models.card import render_card
    from reid_hub.resources import model_cards_dir

    model = from_pretrained(model_cards_dir() / name) if keep_weights else _variant_model(runs, cand, variant)
    model.config.name = name
    model.config.description = (f"reid-hub multi-species re-ID model ({model.config.backbone}, {model.embedding_dim}-d, "
                                f"{model.config.preprocess.size} px), sub-center ArcFace with dynamic margins on top of "
                                "frozen ImageNet early stages, distilled toward the ImageNet features"
                                + (", with a frozen ImageNet general branch." if variant.startswith("general") else "."))
    entry = results["candidates"][cand]
    base_un, base_zs = results["baselines"]["unseen"], results["baselines"]["zero_shot"]
    species_rows = []
    for sp, v in entry["all"][variant].items():
        for label, r in ((name, v), ("multispecies-v1", base_un["multispecies-v1"][sp]),
                         ("ImageNet Lite0 224", base_un["imagenet-lite0"][sp]),
                         ("ImageNet Lite2 260", base_un["imagenet-lite2"][sp])):
            o = r.get("open_set", {})
            species_rows.append({"species": sp, "method": label, "top-1": r["top1"], "top-5": r["top5"], "mAP": r["mAP"],
                                "open-set AUROC": o.get("auroc", ""), "open-set bal. acc.": o.get("balanced_accuracy", "")})
    zero_shot = []
    for tag, e in entry.items():
        if tag.startswith("without-"):
            for sp, v in e.get(variant, {}).items():
                zero_shot.append({"held-out species": sp, "trained on": "the other species",
                                  "top-1": v["top1"], "mAP": v["mAP"],
                                  "ImageNet Lite0 top-1": base_zs["imagenet-lite0"][sp]["top1"],
                                  "ImageNet Lite0 mAP": base_zs["imagenet-lite0"][sp]["mAP"]})
    cands = candidate_rows(results)
    alone = per_species_rows(results, cand)
    split = pd.read_csv(runs / "split.csv")
    data_rows = [{"name": ds, "species": part["species"].iloc[0], "images": len(part),
                  "identities": f"{part['identity'].nunique()} ({part[part.split == 'unseen']['identity'].nunique()} "
                                "held out, unseen)", "license": dataset_license(ds),
                  "source": f"../shared/data/{ds} (see its SOURCE.md)"} for ds, part in split.groupby("dataset")]
    spec = CANDIDATES[cand]
    text = (f"Recipe `{cand}`, variant `{variant}`: {json.dumps(spec)}. The stem and the first "
            f"{spec['frozen_blocks']} stages keep their ImageNet weights (their outputs are cached once per augmented "
            "view, 4 views per image, so every epoch costs only the upper stages); the upper stages, GeM pooling, "
            "projection and BN neck train with sub-center ArcFace and dynamic margins, plus a cosine distillation "
            "loss that keeps the pooled features close to the ImageNet ones. "
            + (f"WiSE-FT: the upper stages are then mixed with their ImageNet weights at alpha = {variant[4:]}. "
               if variant.startswith("wise") else "")
            + (f"General branch: a frozen copy of the ImageNet upper stages runs beside the trained ones on the shared "
               f"frozen trunk; its GeM-pooled features (unit length, weight {variant[7:]}) are appended to the re-ID "
               f"embedding ({model.embedding_dim}-d in all), so species the training never saw keep the general "
               "features. " if variant.startswith("general") else "")
            + f"Training wall time on 2 CPU cores: {entry['all']['train_elapsed_s'] / 60:.0f} min for this model.")
    card = ModelCard(
        title=f"reid-hub {name}", license="other",
        summary=model.config.description + " Chosen by generalization: leave-one-species-out zero-shot accuracy "
                "and unseen identities of every staged species.",
        training_data=data_rows,
        metrics=species_rows,
        metrics_note=("Unseen identities (30% of identities per species, seed 0; the four species of multispecies-v1 "
                      "keep v1's own split so v1 is scored on identities it never saw): every image queries all other "
                      "unseen images of its species; fish queries only match other cameras. Open set: half of the unseen "
                      "identities removed from the gallery, threshold calibrated on the gallery itself.\n\n"
                      "Zero-shot (leave-one-species-out): the same recipe trained without the species, evaluated on "
                      "every image of it.\n\n" + _md(zero_shot) + "\n\nCandidates (same split, same data; means "
                      "over the five species; worst zero-shot margin = min over species of zero-shot top-1 minus "
                      "ImageNet Lite0's; train min = the candidate's runs, all species plus the "
                      "leave-one-species-out runs done):\n\n" + _md(cands)
                      + ("\n\nOne model per species vs one multi-species model, same recipe and the same epochs over "
                         "each species' training images (the per-species runs together cost one multi-species run); "
                         "unseen identities, re-ID branch alone:\n\n" + _md(alone) if alone else "")),
        training=text,
        limitations=("Trained on about 3,500 images of five species on CPU. Lion (small, low-resolution crops of body "
                     "parts) and nyala (flank photos from either side) stay hard for any global embedding: pair it with "
                     "local-feature verification. Scores are cosine similarities, not probabilities: calibrate on your "
                     "own gallery. Part of the training data is non-commercial (chimpanzee) or states no license, so "
                     "treat these weights as research-only. Use as a ranking aid that a person verifies."),
        citation=("MiewID recipe: Otarashvili et al., arXiv:2412.05602. WiSE-FT: Wortsman et al., CVPR 2022. Data: "
                  "Dlamini & van Zyl 2020 (lion, nyala); Freytag et al. GCPR 2016 (chimpanzee); "
                  "gpriamo/Cat-Faces-Identification (cats); Fan et al., Front. Mar. Sci. 2024 (FS48 fish)."),
    )
    if keep_weights:  # config.json and model.safetensors stay byte for byte; only README.md is rewritten
        # (save_pretrained would write the same tensors, but safetensors orders its metadata differently per process)
        out = model_cards_dir() / name
        tmp = out / ".README.md.tmp"
        tmp.write_text(render_card(model, card))
        os.replace(tmp, out / "README.md")
        return out
    out = save_pretrained(model, model_cards_dir() / name, card=card, dtype="float16")
    logging.info("released %s (%.1f MB)", out, (out / "model.safetensors").stat().st_size / 1e6)
    return out


def _md(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    cols = list(rows[0])
    fmt = lambda v: f"{v:.3f}" if isinstance(v, (float, np.floating)) else str(v)  # noqa: E731
    return "\n".join(["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
                     + ["| " + " | ".join(fmt(r[c]) for c in cols) + " |" for r in rows])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", nargs="*", default=[str(p.parent) for p in sorted(SHARED.glob("*/metadata.csv"))])
    ap.add_argument("--only", nargs="*", default=list(CANDIDATES))
    ap.add_argument("--skip-loso", action="store_true")
    ap.add_argument("--loso", nargs="*", help="leave out only these datasets (default: each in turn)")
    ap.add_argument("--per-species", action="store_true", help="also train one model per species (same epochs)")
    ap.add_argument("--runs", default="runs/generalization")
    ap.add_argument("--out", default=str(HERE / "results" / "generalization.json"))
    ap.add_argument("--release", help="CANDIDATE:VARIANT to release (variant: model or wiseA), with --name")
    ap.add_argument("--name", default="multispecies-v2")
    ap.add_argument("--keep-weights", action="store_true",
                    help="with --release: keep the weights already released as --name, refresh only its card")
    ap.add_argument("--table", action="store_true", help="print the candidate table of the results and stop")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    runs = Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    df = staged_split(args.data)
    split_file = runs / "split.csv"
    df[["image_id", "dataset", "species", "identity", "split"]].to_csv(split_file, index=False)
    unseen = df[df["split"] == "unseen"]
    species_of = dict(zip(df["dataset"], df["species"]))
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.is_file() else {}
    if args.table:
        print(_md(candidate_rows(results)))
        return
    if args.release:
        cand, variant = args.release.split(":")
        release(results, runs, cand, variant, args.name, keep_weights=args.keep_weights)
        return
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
        res = evaluate_methods(target, {k: cosine_scorer(v) for k, v in tables.items()}, cross_column=CROSS)
        return {k: species_summary(res, k) for k in tables}

    # baselines once
    if results.get("split_version") != 2:  # baselines of an earlier split are stale
        results = {k: v for k, v in results.items() if k not in ("baselines", "candidates")}
        results["split_version"] = 2
    results.setdefault("candidates", {})
    if "baselines" not in results:
        base = {"imagenet-lite0": embed_table_cached(imagenet_baseline("lite0"), df, cache, "imagenet-lite0-224"),
                "imagenet-lite2": embed_table_cached(imagenet_baseline("lite2"), df, cache, "imagenet-lite2-260"),
                "multispecies-v1": embed_table_cached(from_pretrained("multispecies-v1"), df, cache)}
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
        held_out = [] if args.skip_loso else [d for d in species_of if args.loso is None or d in args.loso]
        todo = [("all", [])] + [(f"without-{d}", [species_of[d]]) for d in held_out]
        if args.per_species:  # trained on one species alone: every other species excluded
            todo += [(f"only-{d}", sorted({species_of[o] for o in species_of} - {species_of[d]})) for d in species_of]
        for tag, excluded in todo:
            if tag in entry and all(v in entry[tag] for v in VARIANTS):
                continue
            run = folder / tag
            t0 = time.time()
            cfg = TrainConfig(data=args.data, out_dir=str(run), seed=0, unseen_fraction=0.3, save_dtype="float16",
                              exclude_species=excluded, checkpoint_every=25, **spec)
            if not (run / "split.csv").is_file():
                run.mkdir(parents=True, exist_ok=True)
                (run / "split.csv").write_text(split_file.read_text())
            done_before = (run / "model" / "model.safetensors").is_file() and tag in entry
            model_dir = run / "model" if done_before else train(cfg, progress=False)
            wall = entry[tag]["train_wall_s_this_session"] if done_before else time.time() - t0
            metrics = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
            target = (unseen if tag == "all" else df[df["species"].isin(excluded)] if tag.startswith("without-")
                      else unseen[~unseen["species"].isin(excluded)])
            rows = df.index.get_indexer(target.index)  # only the evaluated images are embedded
            tids, tpaths = [ids[i] for i in rows], [paths[i] for i in rows]
            model = from_pretrained(model_dir)
            reid = _embed_cached(model, tpaths, frozen)
            tables = {"model": dict(zip(tids, reid))}
            for a in WISE_ALPHAS:
                mixed = interpolate_backbone(from_pretrained(model_dir), init, a)
                tables[f"wise{a}"] = dict(zip(tids, _embed_cached(mixed, tpaths, frozen)))
            general = _embed_cached(init, tpaths, frozen, raw=True)  # the frozen ImageNet upper stages
            for w in GENERAL_WEIGHTS:
                joined = join_general(torch.from_numpy(reid), torch.from_numpy(general), w)
                tables[f"general{w}"] = dict(zip(tids, joined.numpy()))
            entry[tag] = {**evaluate(tables, target), "train_steps": metrics[-1]["step"],
                          "train_wall_s_this_session": round(wall), "train_elapsed_s": metrics[-1]["elapsed_s"]}
            logging.info("%s/%s: %s", name, tag, json.dumps({k: {s: v["top1"] for s, v in entry[tag][k].items()}
                                                            for k in tables}))
            save()


if __name__ == "__main__":
    main()
