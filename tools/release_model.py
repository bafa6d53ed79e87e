"""Publish a trained candidate as the released model under model_cards/<name>/ with its card.

The card's metrics come from an evaluation JSON written by evaluate_candidates.py (same split);
the fp16 weights written here are the ones that evaluation loaded, so the metrics describe them.
Usage: python tools/release_model.py --run runs/candidates/lite0-imagenet \
           --results benchmarks/results/candidates.json [--name multispecies-v1]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from reid_hub import ModelCard, from_pretrained, save_pretrained
from reid_hub.models.loading import DEFAULT_MODEL
from reid_hub.resources import model_cards_dir

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))  # the benchmarks' shared helpers
from common import dataset_license  # noqa: E402


REFERENCES = (
    "Published reference on the public datasets (not the same split or subset as ours): MegaDescriptor-L-384 "
    "reaches 36.45% top-1 on NyalaData (ImageNet Swin-B 10.28%, CLIP 10.51%, DINOv2 14.72%; Cermak et al., "
    "WildlifeDatasets, WACV 2024, Table 4). A LionData figure for MegaDescriptor was not found in the material "
    "available offline here. The nyala and lion folders used here hold a subset of the identities of "
    "NyalaData/LionData (a seeded share is kept elsewhere), and our queries search a gallery of unseen "
    "identities only, so the numbers are indicative, not a like-for-like comparison."
)






def _training_text(run: Path, cfg: dict) -> str:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    last = json.loads(lines[-1])
    init = "offline ImageNet weights" if cfg.get("pretrained") else (
        f"`{cfg['init_from']}`" if cfg.get("init_from") else "random initialisation")
    return (f"`{cfg['model'] if not cfg.get('init_from') else 'init_from'}` from {init}; {last['step']} steps "
            f"({cfg['epochs']} epochs) of batch {cfg['batch_size']}, sub-center ArcFace (k={cfg['subcenters']}, "
            f"s={cfg['scale']}, dynamic margins m_c = {cfg['margin_a']} n_c^-1/4 + {cfg['margin_b']}), AdamW lr "
            f"{cfg['lr']} (backbone x{cfg['backbone_lr_mult']}), warm-up + cosine, "
            f"{'class-balanced' if cfg['balanced'] else 'shuffled'} sampling, identity split seed {cfg['seed']}. "
            f"Wall time of the last training session: {last['elapsed_s'] / 60:.0f} min on 2 CPU cores (shared with "
            "other jobs), weights stored as fp16.")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--method", help="method name in the results (default: the run folder name)")
    ap.add_argument("--name", default=DEFAULT_MODEL)
    ap.add_argument("--training-note", default="")
    ap.add_argument("--limitations", default="")
    args = ap.parse_args()
    run = Path(args.run)
    res = json.loads(Path(args.results).read_text())
    method = args.method or run.name
    model = from_pretrained(run / "model")
    model.config.name = args.name
    model.config.description = (f"reid-hub multi-species re-ID model ({model.config.backbone}, "
                                f"{model.embedding_dim}-d), sub-center ArcFace with dynamic margins.")
    split = json.loads((run / "config.json").read_text())
    rows = []
    baselines = [m for m in res["methods"] if m != method and not m.startswith(("lite", "effv2"))]
    for species, entry in res["species"].items():
        for m in [method] + baselines:
            r = entry[m]
            o = r.get("open_set", {})
            rows.append({"species": species, "method": "this model" if m == method else m,
                         "unseen IDs": entry["identities"], "query images": r["queries"],
                         "top-1": r["top1"], "top-5": r["top5"], "mAP": r["mAP"],
                         "AUROC new-vs-known": o.get("auroc", ""), "balanced acc. (open set)": o.get("balanced_accuracy", "")})
    for m in [method] + baselines:
        a = res["average"][m]
        rows.append({"species": "**average**", "method": "this model" if m == method else m, "top-1": a["top1"],
                     "top-5": a["top5"], "mAP": a["mAP"]})
    data_rows = []
    import pandas as pd
    split_df = pd.read_csv(run / "split.csv")
    for ds, part in split_df.groupby("dataset"):
        unseen = part[part["split"] == "unseen"]
        data_rows.append({"name": ds, "species": part["species"].iloc[0], "images": len(part),
                          "identities": f"{part['identity'].nunique()} ({unseen['identity'].nunique()} held out, unseen)",
                          "license": dataset_license(ds), "source": f"../shared/data/{ds} (see its SOURCE.md)"})
    card = ModelCard(
        title=f"reid-hub {args.name}",
        summary=model.config.description + " Trained on CPU on every staged species; identities held out per "
                "species for evaluation.",
        license="other",
        training_data=data_rows,
        metrics=rows,
        metrics_note=(f"Unseen identities only (split seed {split['seed']}, {int(split['unseen_fraction'] * 100)}% of "
                      "identities per species, among those with two or more images): every image is a query against "
                      "all other unseen images of its species. Open set: half of the unseen identities removed from "
                      "the gallery, threshold calibrated on the training identities. Baselines in the same run and "
                      "split: the ImageNet backbones without re-ID training (GeM-pooled features) and SIFT with ratio "
                      "test + RANSAC inliers.\n\n" + REFERENCES),
        training=args.training_note or _training_text(run, split),
        limitations=args.limitations or (
            "Trained on about 2,000 images of four species (lion, nyala, chimpanzee, domestic cat): identities of "
            "other species are embedded zero-shot and are less reliable. Small, low-resolution crops (lion) and "
            "flank photos seen from the other side (nyala) are hard. Scores are similarities, not probabilities: "
            "calibrate an open-set threshold on your own gallery. Use as a ranking aid that a person verifies. Part of the "
            "training data (chimpanzee) is licensed for non-commercial use only, so treat these weights as "
            "research-only."),
        citation=("MiewID recipe: Otarashvili et al., Multispecies Animal Re-ID Using a Large Community-Curated Dataset, "
                  "arXiv:2412.05602. Data: Dlamini & van Zyl 2020 (lion, nyala); Freytag et al. GCPR 2016 (chimpanzee); "
                  "gpriamo/Cat-Faces-Identification (cats)."),
    )
    out = save_pretrained(model, model_cards_dir() / args.name, card=card, dtype="float16")
    print(f"released {out} ({(out / 'model.safetensors').stat().st_size / 1e6:.1f} MB), fingerprint {model.fingerprint()}")


if __name__ == "__main__":
    main()
