"""Train the release-model candidates on every staged species (unseen identities held out).

Each candidate is a resumable run folder under runs/candidates/<name>/; re-running the script
continues unfinished runs and skips finished ones. Usage:
    python tools/train_candidates.py [--data DIR ...] [--only NAME ...]
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from reid_hub.training.loop import TrainConfig, distill, train

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
DEFAULT_DATA = [str(p.parent) for p in sorted(SHARED.glob("*/metadata.csv"))]

CANDIDATES = {
    "lite0-imagenet": dict(model="lite0", pretrained=True, epochs=14, lr=1e-3, backbone_lr_mult=0.3,
                           balanced=True),
    "lite0-imagenet-shuffle": dict(model="lite0", pretrained=True, epochs=14, lr=1e-3, backbone_lr_mult=0.3),
    "effv2-b0-scratch": dict(model="effv2-b0", pretrained=False, epochs=14, lr=2e-3, backbone_lr_mult=1.0),
    "effv2-b0-scratch-short": dict(model="effv2-b0", pretrained=False, epochs=6, lr=2e-3, backbone_lr_mult=1.0),
    "effv2-b0-distill-lite2": dict(model="effv2-b0", epochs=14, lr=1e-3, backbone_lr_mult=0.5,
                                   distill_from="lite2", distill_epochs=6),
    "lite2-imagenet": dict(model="lite2", pretrained=True, epochs=10, lr=1e-3, backbone_lr_mult=0.3),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", nargs="*", default=DEFAULT_DATA)
    ap.add_argument("--only", nargs="*", default=list(CANDIDATES))
    ap.add_argument("--out", default="runs/candidates")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for name in args.only:
        spec = dict(CANDIDATES[name])
        out = Path(args.out) / name
        if (out / "model" / "model.safetensors").is_file():
            logging.info("%s: done already", name)
            continue
        teacher = spec.pop("distill_from", None)
        distill_epochs = spec.pop("distill_epochs", 0)
        if teacher:
            init = distill(spec["model"], teacher, args.data, out / "distilled", epochs=distill_epochs)
            spec.pop("model")
            spec["init_from"] = str(init)
        train(TrainConfig(data=args.data, out_dir=str(out), save_dtype="float16", **spec), progress=False)


if __name__ == "__main__":
    main()
