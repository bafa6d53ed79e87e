"""Verification beyond one machine: the candidate pairs of a generated collection of 20,000 images (4,000 coat
patterns x 5 photos, reid_hub.data.synthetic, 240 x 180) verified in process and on Ray with 1..N workers.
Candidate pairs: each image's 20 nearest neighbours by a cheap global descriptor (a 16 x 12 grey thumbnail), as
`reid-hub discover` takes the candidate graph's pairs above 300 images. A fixed random sample of the pairs is
verified in every configuration (`--sample`, with the features of every image it touches, each extracted once), so
that the per-pair and per-image costs and the speed-up from 1 to N workers are measured on the same work; the time
for every pair is extrapolated from them. Writes results/verification_scaling.json.
Usage: python benchmarks/verification_scaling.py [--images 20000] [--sample 3000] [--workers 1 2]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
from PIL import Image

from reid_hub.data.synthetic import coat, photo
from reid_hub.discovery.local_evidence import extract_features
from reid_hub.evaluation.runner import machine_info
from reid_hub.scale.embedding import start_ray
from reid_hub.scale.verification import ray_verifier
from reid_hub.scoring.matchers import create_matcher

from common import RESULTS  # the benchmarks' shared helpers


def generate(folder: Path, images: int, per: int = 5) -> list[dict]:
    """`images` JPEGs of images // per animals, and their records."""
    records = []
    for k in range(images // per):
        base = coat(100_000 + k)
        for m in range(per):
            f = folder / f"{k:05d}_{m}.jpg"
            photo(base, m).convert("RGB").save(f, quality=90)
            records.append({"image": str(f), "bbox": None, "identity": str(k)})
    return records


def candidate_pairs(records: list[dict], k: int = 20) -> tuple[np.ndarray, np.ndarray]:
    x = np.stack([np.asarray(Image.open(r["image"]).convert("L").resize((16, 12)), np.float32).ravel()
                  for r in records])
    x -= x.mean(axis=1, keepdims=True)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-6)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    _, nn = index.search(x, k + 1)
    a = np.repeat(np.arange(len(x)), k + 1)
    b = nn.ravel()
    keep = (b >= 0) & (a != b)
    key = np.unique(np.minimum(a[keep], b[keep]) * len(x) + np.maximum(a[keep], b[keep]))
    return key // len(x), key % len(x)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=20_000)
    ap.add_argument("--sample", type=int, default=3000)
    ap.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        records = generate(Path(tmp), args.images)
        t_gen = time.perf_counter() - t0
        i, j = candidate_pairs(records)
        rng = np.random.default_rng(0)
        pick = np.sort(rng.choice(len(i), size=min(args.sample, len(i)), replace=False))
        si, sj = i[pick], j[pick]
        touched = int(len(np.unique(np.concatenate([si, sj]))))
        res = {"machine": machine_info(), "images": len(records), "candidate_pairs": int(len(i)),
               "sample_pairs": int(len(si)), "sample_images": touched, "generate_seconds": round(t_gen, 1),
               "runs": {}}
        matcher = create_matcher("sift")
        t0 = time.perf_counter()
        feats = {r: extract_features(matcher, records, r) for r in np.unique(np.concatenate([si, sj])).tolist()}
        t_extract = time.perf_counter() - t0
        t0 = time.perf_counter()
        here = np.array([float(matcher.match(feats[int(a)], feats[int(b)]).inliers.sum()) for a, b in zip(si, sj)],
                        np.float32)
        t_match = time.perf_counter() - t0
        res["per_image_ms"] = round(1000 * t_extract / touched, 2)
        res["per_pair_ms"] = round(1000 * t_match / len(si), 3)
        full = t_extract / touched * len(records) + t_match / len(si) * len(i)
        res["runs"]["in process"] = {"seconds": round(t_extract + t_match, 2)}
        for w in args.workers:
            import ray

            if ray.is_initialized():
                ray.shutdown()
            start_ray(cpus=w)  # Ray's own start (seconds) is not the verification's cost
            t0 = time.perf_counter()
            got = ray_verifier(cpus=w)(records, si, sj, "sift", False)
            res["runs"][f"ray, {w} worker{'s' if w > 1 else ''}"] = {"seconds": round(time.perf_counter() - t0, 2),
                                                                     "same_counts": bool(np.array_equal(got, here))}
        base = res["runs"]["in process"]["seconds"]
        for run in res["runs"].values():
            run["speed_up"] = round(base / run["seconds"], 2)
            # the whole collection: every image's features once and every pair once, at the sample's rates
            run["all_pairs_minutes_estimate"] = round(full / run["speed_up"] / 60, 1)
    (RESULTS / "verification_scaling.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
