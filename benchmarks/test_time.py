"""Training-free test-time variants on the generalization protocol: input size and gallery centring.

Scores, on the split of benchmarks/generalization.py (seed 0; fish queries only match other cameras):
- ImageNet EfficientNet-Lite0 pooled features at input sizes 224 (its native size, the baseline), 256, 288, 320,
  zero-shot (every image of each species) and on the unseen identities;
- the released multispecies-v2 at 224 (its size), 256, 288 on the unseen identities (it saw the other identities,
  so it has no zero-shot row here: the leave-one-species-out models are benchmarks/generalization.py's);
- each of them "centred": every embedding minus the mean embedding of the gallery it is searched in (all images
  of the species being evaluated), then re-normalised. This uses the gallery's own unlabeled images, as a
  deployed gallery could, and nothing else.
Results: benchmarks/results/test_time.json. Usage: python benchmarks/test_time.py [--data DIR ...]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from reid_hub import from_pretrained
from reid_hub.evaluation.runner import evaluate_methods, imagenet_baseline, machine_info
from reid_hub.models.model import ReIDModel

from common import (CROSS, SHARED, cosine_scorer, embed_table_cached, species_summary,  # the benchmarks' shared helpers
                    staged_split)

HERE = Path(__file__).resolve().parent
IMAGENET_SIZES = (224, 256, 288, 320)
V2_SIZES = (224, 256, 288)


def _at_size(model: ReIDModel, size: int) -> ReIDModel:
    model.config.preprocess.size = int(size)
    return model


def _table(res: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for name in res["methods"]:
        per = species_summary(res, name)
        out[name] = {"species": per, "mean_top1": round(float(np.mean([v["top1"] for v in per.values()])), 4)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", nargs="*", default=[str(p.parent) for p in sorted(SHARED.glob("*/metadata.csv"))])
    ap.add_argument("--cache", default="runs/test_time")
    ap.add_argument("--out", default=str(HERE / "results" / "test_time.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    df = staged_split(args.data)
    unseen = df[df["split"] == "unseen"]
    cache = Path(args.cache)
    imagenet = {s: embed_table_cached(_at_size(imagenet_baseline("lite0"), s), df, cache, f"imagenet-lite0-{s}")
                for s in IMAGENET_SIZES}
    v2 = {s: embed_table_cached(_at_size(from_pretrained("multispecies-v2"), s), unseen, cache) for s in V2_SIZES}

    def methods(tables: dict[int, dict[str, np.ndarray]], name: str) -> dict[str, Callable]:
        return {f"{name} {s} px{' centred' if c else ''}": cosine_scorer(t, c)
                for s, t in tables.items() for c in (False, True)}

    results = {
        "protocol": {"split": "benchmarks/generalization.py (seed 0, 30% unseen identities per species)",
                     "zero_shot": "every image of each species; ImageNet features never saw re-ID labels",
                     "cross_column": CROSS,
                     "centred": "embeddings minus the mean of the gallery searched (the species' evaluated images), "
                                "re-normalised"},
        "zero_shot": _table(evaluate_methods(df, methods(imagenet, "imagenet-lite0"), cross_column=CROSS)),
        "unseen": _table(evaluate_methods(unseen, {**methods(imagenet, "imagenet-lite0"), **methods(v2, "multispecies-v2")},
                                          cross_column=CROSS)),
        "machine": machine_info(),
    }
    out = Path(args.out)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(results, indent=2))
    os.replace(tmp, out)
    for part in ("zero_shot", "unseen"):
        for name, r in results[part].items():
            logging.info("%s %-36s mean %.3f %s", part, name, r["mean_top1"],
                         {sp: v["top1"] for sp, v in r["species"].items()})


if __name__ == "__main__":
    main()
