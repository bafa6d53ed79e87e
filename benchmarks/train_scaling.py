"""Training throughput: one process vs 2 data-parallel workers (Ray Train, torchrun) on this machine.

Same global batch, same steps, generated images (so no data is needed); lite0 at 128 px by default.
Throughput = images per second of training steps (from each run's metrics.jsonl, the first steps
skipped as warm-up). Writes benchmarks/results/train_scaling.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from reid_hub.evaluation.runner import machine_info
from reid_hub.training.loop import TrainConfig, train

HERE = Path(__file__).resolve().parent


def make_data(folder: Path, identities: int = 16, per_identity: int = 8, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    rows = ["image_id,path,identity,species"]
    for i in range(identities):
        pattern = rng.integers(0, 256, (6, 6, 3)).astype(np.uint8)
        (folder / "images" / f"id{i}").mkdir(parents=True, exist_ok=True)
        for k in range(per_identity):
            img = np.asarray(Image.fromarray(pattern).resize((96, 96), Image.NEAREST)).astype(np.int16)
            img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(folder / "images" / f"id{i}" / f"{k}.png")
            rows.append(f"gen/{i}/{k},images/id{i}/{k}.png,id{i},generated")
    (folder / "metadata.csv").write_text("\n".join(rows) + "\n")
    return folder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="lite0")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--out", default=str(HERE / "results" / "train_scaling.json"))
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="scaling"))
    data = make_data(tmp / "data")
    common = dict(data=[str(data)], model=args.model, pretrained=args.model.startswith("lite"),
                  overrides={"preprocess": {"size": args.size}}, max_steps=args.steps, batch_size=args.batch_size,
                  warmup_steps=2, unseen_fraction=0.0, checkpoint_every=10_000, seed=0)

    def ips(run: Path) -> float:
        recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        t = recs[-1]["elapsed_s"] - recs[2]["elapsed_s"]
        return round((len(recs) - 3) * args.batch_size / t, 2)

    out = {"model": args.model, "input_size": args.size, "global_batch": args.batch_size, "steps": args.steps}
    train(TrainConfig(out_dir=str(tmp / "single"), **common), progress=False)
    out["single_process_img_per_s"] = ips(tmp / "single")

    import ray

    from reid_hub.training.ray_trainer import train_on_ray

    train_on_ray(TrainConfig(out_dir=str(tmp / "ray"), **common), workers=2)
    ray.shutdown()
    out["ray_2_workers_img_per_s"] = ips(tmp / "ray")

    cli = ["--data", str(data), "--model", args.model, "--size", str(args.size), "--max-steps", str(args.steps),
           "--batch-size", str(args.batch_size), "--unseen-fraction", "0", "--checkpoint-every", "10000", "--quiet"]
    if args.model.startswith("lite"):
        cli.append("--pretrained")
    subprocess.run([str(Path(sys.executable).parent / "torchrun"), "--nproc-per-node", "2", "-m", "reid_hub", "train",
                    "--out", str(tmp / "torchrun"), *cli], check=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                   capture_output=True)
    out["torchrun_2_processes_img_per_s"] = ips(tmp / "torchrun")
    for k in ("ray_2_workers_img_per_s", "torchrun_2_processes_img_per_s"):
        out[k.replace("img_per_s", "ratio_to_single")] = round(out[k] / out["single_process_img_per_s"], 3)
    out["note"] = ("2 CPU cores: one process already uses both through intra-op threads, so 2 workers (1 thread each) "
                   "add gradient all-reduce (gloo) and process overhead without adding compute; no speed-up is "
                   "expected here. On GPUs each worker adds a device, and DDP overlaps the all-reduce with backward.")
    out["machine"] = machine_info()
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
