"""Embedding throughput of a reid-hub model vs a raw timm forward of its backbone, same run, same inputs.

Prints a table and saves JSON to benchmarks/results/embed_throughput.json. The raw baseline is
`timm.create_model(backbone, num_classes=0)` on already-preprocessed tensors; reid-hub is measured
both on tensors (model overhead: GeM, neck, normalisation) and end to end from decoded PIL images
(preprocessing included), which is what a user calls.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import timm
import torch
from PIL import Image

from reid_hub import DEFAULT_MODEL, from_pretrained
from reid_hub.evaluate import machine_info


def _rate(fn, n_items: int, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return n_items / float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "embed_throughput.json"))
    args = ap.parse_args()

    model = from_pretrained(args.model)
    size = model.config.preprocess.size
    n = args.batch_size * args.batches
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (rng.integers(150, 400), rng.integers(150, 400), 3), dtype=np.uint8))
              for _ in range(n)]
    tensors = model.preprocess(images)
    raw = timm.create_model(model.config.backbone, pretrained=False, num_classes=0).eval()
    raw.to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def raw_forward():
        for b in tensors.split(args.batch_size):
            raw(b.contiguous(memory_format=torch.channels_last))

    @torch.inference_mode()
    def raw_forward_contiguous():
        raw_plain = raw.to(memory_format=torch.contiguous_format)
        for b in tensors.split(args.batch_size):
            raw_plain(b)
        raw.to(memory_format=torch.channels_last)

    results = {
        "raw_timm_forward_channels_last": _rate(raw_forward, n, args.repeats),
        "raw_timm_forward_contiguous": _rate(raw_forward_contiguous, n, args.repeats),
        "reid_hub_embed_tensors": _rate(lambda: model.embed(tensors, batch_size=args.batch_size), n, args.repeats),
        "reid_hub_embed_pil_images": _rate(lambda: model.embed(images, batch_size=args.batch_size), n, args.repeats),
    }
    base = results["raw_timm_forward_channels_last"]
    report = {
        "model": args.model, "backbone": model.config.backbone, "input_size": size, "batch_size": args.batch_size,
        "images": n, "images_per_s": {k: round(v, 2) for k, v in results.items()},
        "ratio_to_raw_timm": {k: round(v / base, 3) for k, v in results.items()},
        "machine": machine_info(),
    }
    print(f"{'path':34s} {'img/s':>8s} {'x raw':>7s}")
    for k, v in results.items():
        print(f"{k:34s} {v:8.1f} {v / base:7.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
