"""Cost of per-video identification.

1. Training time per epoch: the self-supervised head on cached frozen descriptors vs a contrastive
   baseline that fine-tunes the backbone (InfoNCE on crops of the same frame pairs), on the real fly
   clip. An epoch visits every frame once as the first of a pair (frames / 32 batches of 32 pairs).
   The baseline's epoch is extrapolated from timed steps (it is far too slow to run whole on CPU);
   its crops are pre-decoded in memory, which favours it.
2. Peak memory (RSS of a fresh process) and time per stage as a synthetic video grows from 1k to
   100k detections (4 moving animals), each size in its own process. The re-ID model is used up to
   --real-max detections, the tiny test model beyond (the embedding model's memory does not grow
   with the video; its time per 1,000 detections is reported where it ran).
Writes benchmarks/results/video_cost.json.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import REPO  # the benchmarks' shared helpers

HERE = Path(__file__).resolve().parent
FLY = REPO / "examples" / "fly_pair_clip_gt"


def write_synthetic_video(path: Path, n_detections: int, k: int = 4, size=(320, 240), seed: int = 0) -> Path:
    """An mp4 of k textured squares drifting around, and its detections CSV (n_detections rows)."""
    import cv2
    from PIL import Image

    rng = np.random.default_rng(seed)
    frames = n_detections // k
    tex = [np.asarray(Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).resize((40, 40),
                                                                                          Image.NEAREST))
           for _ in range(k)]
    pos = np.array([[20 + 70 * i, 100] for i in range(k)], dtype=float)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, size)
    rows = []
    for f in range(frames):
        canvas = np.full((size[1], size[0], 3), 80, np.uint8)
        for i in range(k):
            x, y = np.clip(pos[i], 0, [size[0] - 40, size[1] - 40]).astype(int)
            canvas[y:y + 40, x:x + 40] = tex[i]
            rows.append(f"{f},{x},{y},40,40,0.9,{i},a{i}")
        pos += rng.normal(0, 1.5, pos.shape)
        pos = np.clip(pos, 0, [size[0] - 40, size[1] - 40])
        writer.write(canvas)
    writer.release()
    path.with_suffix(".csv").write_text("frame,x,y,w,h,score,track,identity\n" + "\n".join(rows) + "\n")
    return path


def peak_rss_mb() -> float:
    """High-water resident memory of this process image (VmHWM; ru_maxrss would include the parent's
    peak, inherited across fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(n: int, model_name: str, workdir: Path) -> dict:
    """Run the whole pipeline once on an n-detection synthetic video; report stages and peak RSS."""
    from reid_hub import from_pretrained
    from reid_hub.models.model import create_model
    from reid_hub.video import ClusterConfig, cluster_video

    video = write_synthetic_video(workdir / f"synthetic_{n}.mp4", n)
    rss_start = peak_rss_mb()
    model = create_model("tiny-test") if model_name == "tiny-test" else from_pretrained(model_name)
    t0 = time.perf_counter()
    res, _ = cluster_video(video, video.with_suffix(".csv"), model, ClusterConfig(k=4), min_score=0.0,
                           cache_dir=workdir / "cache")
    total = time.perf_counter() - t0
    from reid_hub.evaluation.metrics import cluster_accuracy

    return {"detections": n, "model": model_name, "total_s": total,
            "per_1000_detections_s": {k: v * 1000 / n for k, v in res.timings.items() if isinstance(v, float)},
            "stages_s": {k: v for k, v in res.timings.items() if isinstance(v, float)},
            "peak_rss_mb": peak_rss_mb(),
            "rss_after_imports_mb": rss_start,
            "accuracy": cluster_accuracy(res.detections["identity"].to_numpy(), res.labels)}


def epoch_costs(model_name: str, timed_steps: int) -> dict:
    """Head epoch (cached descriptors) vs contrastive fine-tuning epoch of the backbone."""
    import torch
    import torch.nn.functional as F

    from reid_hub import from_pretrained
    from reid_hub.data.imaging import crop_box, preprocess
    from reid_hub.video import HeadConfig, compute_descriptors, frame_groups, load_video_detections, train_head

    model = from_pretrained(model_name)
    source, det = load_video_detections(FLY / "video.mp4", FLY / "tracks.csv", min_score=0.0)
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        desc = np.array(compute_descriptors(source, det, model, cache_dir=cache))
        extract = time.perf_counter() - t0
    groups = frame_groups(det)
    cfg = HeadConfig(epochs=1, max_steps=10 ** 9)
    torch.set_num_threads(os.cpu_count() or 1)
    peak_before = peak_rss_mb()
    _, info = train_head(desc, groups, cfg, k=2)
    head_epoch = info["seconds"]
    steps_per_epoch = info["steps"]
    # contrastive baseline: crops of 32 frame pairs (f, f+1: the same animals) through the trainable backbone
    crops: dict[int, torch.Tensor] = {}
    boxes = det[["x", "y", "w", "h"]].to_numpy()
    wanted = sorted(set(range(0, 2 * (timed_steps + 1) * 32 + 2)) & set(det["frame"]))
    for f, img in source.iter_frames(wanted):
        rows = groups[f]
        crops[f] = torch.stack([preprocess(crop_box(img, tuple(boxes[r]), 0.1), model.config.preprocess)
                                for r in rows])
    model.train()
    proj = torch.nn.Linear(model.embedding_dim, 128)
    opt = torch.optim.AdamW(list(model.parameters()) + list(proj.parameters()), lr=1e-4)
    times = []
    for step in range(timed_steps + 1):
        fa = [2 * (step * 32 + i) for i in range(32)]
        a = torch.cat([crops[f] for f in fa])
        b = torch.cat([crops[f + 1] for f in fa])
        t = time.perf_counter()
        za = F.normalize(proj(model(a.contiguous(memory_format=torch.channels_last))), dim=1)
        zb = F.normalize(proj(model(b.contiguous(memory_format=torch.channels_last))), dim=1)
        logits = za @ zb.T / 0.1
        target = torch.arange(len(za))
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step:  # the first step warms up allocators and kernels
            times.append(time.perf_counter() - t)
    contrastive_step = float(np.median(times))
    contrastive_epoch = contrastive_step * steps_per_epoch
    return {"video": "fly_pair_clip_gt", "detections": len(det), "frames": len(groups),
            "steps_per_epoch": steps_per_epoch, "pairs_per_step": 32,
            "descriptor_extraction_once_s": extract, "head_epoch_s": head_epoch,
            "contrastive_step_s": contrastive_step, "contrastive_epoch_s_extrapolated": contrastive_epoch,
            "contrastive_timed_steps": timed_steps,
            "ratio_contrastive_over_head_epoch": contrastive_epoch / head_epoch,
            "ratio_contrastive_over_head_first_epoch_incl_extraction": contrastive_epoch / (head_epoch + extract),
            "peak_rss_mb_contrastive_process": peak_rss_mb(),
            "peak_rss_mb_before_baseline": peak_before}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="multispecies-v1")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 30000, 100000])
    ap.add_argument("--real-max", type=int, default=10000, help="largest video embedded with the re-ID model")
    ap.add_argument("--timed-steps", type=int, default=4)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--child-model", help=argparse.SUPPRESS)
    ap.add_argument("--skip-epochs", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results" / "video_cost.json"))
    args = ap.parse_args()
    if args.child:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(child(args.child, args.child_model, Path(tmp))))
        return
    from reid_hub.evaluation.runner import machine_info

    out = Path(args.out)
    report = json.loads(out.read_text()) if out.is_file() else {}
    report.update({"machine": machine_info(), "model": args.model})
    if not args.skip_epochs:
        report["epoch"] = epoch_costs(args.model, args.timed_steps)
        print(json.dumps(report["epoch"], indent=2), flush=True)
    report["scaling"] = []
    for n in args.sizes:
        for model in ([args.model] if n <= args.real_max else []) + ["tiny-test"]:
            r = subprocess.run([sys.executable, __file__, "--child", str(n), "--child-model", model],
                               capture_output=True, text=True)
            if r.returncode:
                print(r.stderr[-2000:])
                raise SystemExit(f"child {n} {model} failed")
            row = json.loads(r.stdout.strip().splitlines()[-1])
            report["scaling"].append(row)
            print(f"{n:7d} {model:16s} peak RSS {row['peak_rss_mb']:.0f} MB  total {row['total_s']:.1f}s  "
                  f"per 1k: " + ", ".join(f"{k} {v:.2f}" for k, v in row["per_1000_detections_s"].items()),
                  flush=True)
            tmp = out.with_suffix(".tmp")
            tmp.write_text(json.dumps(report, indent=2))
            os.replace(tmp, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
