"""Embedding throughput per inference backend, in one run, as ratios to a raw timm forward of the backbone.

Paths measured, each at batch 1 and batch 16, alternated repeat by repeat so machine drift hits them alike:
- `raw_timm`: `timm.create_model(backbone, num_classes=0)` eager forward, channels-last, on preprocessed tensors
  (the natural baseline; it computes only the backbone, not the general branch, pooling or neck);
- `torch`, `onnx`, `onnx-int8`: `ReIDModel.embed(..., backend=...)` from preprocessed tensors, and from JPEG
  files on disk (decode + resize included, what a user calls).

int8 is timed even when its probe rejects it (then `embed` would fall back); `int8_min_cosine` says how close it
came. Saves JSON to benchmarks/results/embed_throughput.json (machine, versions, threads, date).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import timm
import torch

from reid_hub import DEFAULT_MODEL, from_pretrained
from reid_hub.data.synthetic import coat, photo
from reid_hub.evaluation.runner import machine_info
from reid_hub.models.backends import thread_count
from reid_hub.models.onnx_engine import OnnxEmbedder


def jpeg_files(folder: Path, n: int) -> list[str]:
    """`n` camera-sized JPEGs (800 x 600, generated coats) written to `folder`."""
    paths = []
    for i in range(n):
        p = folder / f"{i:04d}.jpg"
        photo(coat(i // 2, size=(800, 600)), i).save(p, quality=90)
        paths.append(str(p))
    return paths


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--images", type=int, default=64, help="images per timed call (batch 16); batch 1 uses a quarter")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="intra-op threads (default: every CPU)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "embed_throughput.json"))
    args = ap.parse_args()
    threads = thread_count(args.threads)
    torch.set_num_threads(threads)

    model = from_pretrained(args.model).eval()
    size = model.config.preprocess.size
    tmp = tempfile.TemporaryDirectory()
    files = jpeg_files(Path(tmp.name), args.images)
    tensors = model.preprocess(files)
    raw = timm.create_model(model.config.backbone, pretrained=False, num_classes=0).eval()
    raw.to(memory_format=torch.channels_last)
    # forced int8 graphs for batches of 1 and 16: timed even if their probe fails
    int8s = {bs: OnnxEmbedder(model, size, int8=True, threads=threads, batch=bs) for bs in (1, 16)}
    int8 = int8s[16]
    model.embed(tensors[:2], backend="onnx", threads=threads)  # export and probe outside the timings

    @torch.inference_mode()
    def raw_forward(x: torch.Tensor, bs: int) -> None:
        for b in x.split(bs):
            raw(b.contiguous(memory_format=torch.channels_last))

    def int8_forward(x: torch.Tensor, bs: int) -> None:
        for b in x.split(bs):
            int8s[bs](b.numpy())

    def int8_files(paths: list[str], bs: int) -> None:
        for i in range(0, len(paths), bs):
            int8s[bs](model.preprocess(paths[i:i + bs]).numpy())

    paths = {}
    for bs in (1, 16):
        n = args.images if bs == 16 else max(4, args.images // 4)
        x, f = tensors[:n], files[:n]
        paths[f"raw_timm/tensors/b{bs}"] = (lambda x=x, bs=bs: raw_forward(x, bs), n)
        for backend in ("torch", "onnx"):
            paths[f"{backend}/tensors/b{bs}"] = (
                lambda x=x, bs=bs, b=backend: model.embed(x, batch_size=bs, backend=b, threads=threads), n)
            paths[f"{backend}/jpeg/b{bs}"] = (
                lambda f=f, bs=bs, b=backend: model.embed(f, batch_size=bs, backend=b, threads=threads), n)
        paths[f"onnx-int8/tensors/b{bs}"] = (lambda x=x, bs=bs: int8_forward(x, bs), n)
        paths[f"onnx-int8/jpeg/b{bs}"] = (lambda f=f, bs=bs: int8_files(f, bs), n)
    times: dict[str, list[float]] = {k: [] for k in paths}
    for fn, _ in paths.values():
        fn()  # warm-up
    for _ in range(args.repeats):  # alternated: every path once per round
        for k, (fn, _) in paths.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    rate = {k: paths[k][1] / float(np.median(v)) for k, v in times.items()}
    latency_ms = {k: 1000 * float(np.median(v)) / paths[k][1] for k, v in times.items() if k.endswith("/b1")}
    ratios = {}
    for bs in (1, 16):
        for src in ("tensors", "jpeg"):
            t = rate[f"torch/{src}/b{bs}"]
            ratios[f"onnx_vs_torch/{src}/b{bs}"] = rate[f"onnx/{src}/b{bs}"] / t
            ratios[f"int8_vs_onnx/{src}/b{bs}"] = rate[f"onnx-int8/{src}/b{bs}"] / rate[f"onnx/{src}/b{bs}"]
        ratios[f"torch_vs_raw_timm/tensors/b{bs}"] = rate[f"torch/tensors/b{bs}"] / rate[f"raw_timm/tensors/b{bs}"]
        ratios[f"onnx_vs_raw_timm/tensors/b{bs}"] = rate[f"onnx/tensors/b{bs}"] / rate[f"raw_timm/tensors/b{bs}"]
    report = {
        "model": args.model, "backbone": model.config.backbone, "input_size": size, "threads": threads,
        "images_batch16": args.images, "repeats": args.repeats, "jpeg": "800x600 generated, quality 90",
        "images_per_s": {k: round(v, 2) for k, v in rate.items()},
        "latency_ms_batch1": {k: round(v, 2) for k, v in latency_ms.items()},
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "int8_min_cosine": round(int8.min_cosine, 5), "int8_trusted": int8.trusted,
        "versions": {"onnxruntime": onnxruntime.__version__, "torch": torch.__version__, "timm": timm.__version__},
        "machine": machine_info(),
    }
    print(f"{'path':26s} {'img/s':>8s}")
    for k, v in rate.items():
        print(f"{k:26s} {v:8.1f}")
    for k, v in ratios.items():
        print(f"{k:34s} {v:6.2f}x")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
