"""Leave-one-species-out zero-shot evaluation.

For each held-out species, train the given config on all other species (every identity of them),
then evaluate on *all* identities of the held-out species, against the ImageNet backbone of the
same family in the same run. Resumable: each run folder is runs/zero_shot/<species>/.
Usage: python benchmarks/zero_shot.py [--species lion ...] [--epochs 6]
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from reid_hub import from_pretrained
from reid_hub.data import tables as rdata
from reid_hub.evaluation.runner import embedding_scorer, evaluate_methods, machine_info
from reid_hub.models.model import create_model
from reid_hub.training.loop import TrainConfig, train

from common import SHARED  # the benchmarks' shared helpers

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--species", nargs="*")
    ap.add_argument("--model", default="lite0")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--runs", default="runs/zero_shot")
    ap.add_argument("--out", default=str(HERE / "results" / "zero_shot.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    folders = {p.parent.name: str(p.parent) for p in sorted(SHARED.glob("*/metadata.csv"))}
    df = rdata.load_sources(list(folders.values()))
    species_of = dict(zip(df["dataset"], df["species"]))
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.is_file() else {"species": {}}
    for held in args.species or list(folders):
        others = [f for name, f in folders.items() if name != held]
        run = Path(args.runs) / held
        folder = train(TrainConfig(data=others, out_dir=str(run), model=args.model, pretrained=True,
                                   epochs=args.epochs, unseen_fraction=0.0, save_dtype="float16"), progress=False)
        target = df[df["dataset"] == held]
        methods = {"zero-shot model": embedding_scorer(from_pretrained(folder)),
                   f"imagenet-{args.model}": embedding_scorer(create_model(args.model, pretrained=True), raw_features=True)}
        res = evaluate_methods(target, methods)
        results["species"][held] = {"species": species_of[held], "trained_on": sorted(set(folders) - {held}),
                                    **res["species"][species_of[held]]}
        results["machine"] = machine_info()
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2))
        e = results["species"][held]
        print(f"{held}: zero-shot top1 {e['zero-shot model']['top1']:.3f} mAP {e['zero-shot model']['mAP']:.3f} | "
              f"ImageNet top1 {e[f'imagenet-{args.model}']['top1']:.3f} mAP {e[f'imagenet-{args.model}']['mAP']:.3f}")


if __name__ == "__main__":
    main()
