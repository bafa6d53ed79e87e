"""Latency per query on CPU: global-only search vs coarse-to-fine identification (local verification of
the shortlist, calibrated fusion) at B = 20 and B = 100, in a 10,000-image gallery.

The gallery holds 10,000 images: embeddings and local features of real staged crops (lion, nyala, chimp,
cat; cycled, each copy with its own embedding jitter so the FAISS search is not degenerate), bulk-loaded.
Queries are other real crops: each timing covers the full request after decoding (embedding, FAISS,
query keypoints, B matches against stored features, calibration, ranking). Result:
benchmarks/results/identify_latency.json with machine and versions.
Usage: python benchmarks/identify_latency.py [--size 10000] [--queries 20] [--matcher sift]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from reid_hub import from_pretrained
from reid_hub.data import tables as rdata
from reid_hub.evaluation.runner import machine_info
from reid_hub.gallery import Gallery
from reid_hub.gallery.identification import identify, set_matcher
from reid_hub.gallery.recalibration import recalibrate
from reid_hub.models.loading import DEFAULT_MODEL

from common import SHARED  # the benchmarks' shared helpers

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "identify_latency.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--real", type=int, default=400, help="real crops whose features fill the gallery")
    ap.add_argument("--matcher", default="sift")
    ap.add_argument("--model", default=DEFAULT_MODEL)
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 2)
    model = from_pretrained(args.model)
    df = rdata.load_sources([SHARED / f for f in ("lion", "nyala", "chimpanzee", "cat_faces")])
    df = df.sample(frac=1.0, random_state=0).reset_index(drop=True)
    real, queries = df.iloc[:args.real], df.iloc[args.real:args.real + args.queries]
    imgs = [rdata.read_sample(r._asdict()) for r in real.itertuples(index=False)]
    emb = np.concatenate([model.embed(imgs[i:i + 16]) for i in range(0, len(imgs), 16)])
    with tempfile.TemporaryDirectory() as tmp:
        g = Gallery(Path(tmp) / "g", model.config.name, model.fingerprint(), model.embedding_dim)
        set_matcher(g, args.matcher)
        m = g.features.matcher(args.matcher)
        blobs = [m.extract(im).to_bytes() for im in imgs]
        rng = np.random.default_rng(0)
        reps = -(-args.size // len(real))
        vecs = np.tile(emb, (reps, 1))[:args.size] + 0.02 * rng.normal(size=(args.size, emb.shape[1]))
        labels = [str(x) for x in np.tile(real["label"].to_numpy(), reps)[:args.size]]
        species = np.tile(real["species"].to_numpy(), reps)[:args.size]
        for sp in sorted(set(species)):
            sel = np.flatnonzero(species == sp)
            g.ingest([labels[i] for i in sel], vecs[sel].astype(np.float32), species=sp)
        ids = [r[0] for r in g.db.execute("SELECT id FROM images ORDER BY id")]
        order = np.concatenate([np.flatnonzero(species == sp) for sp in sorted(set(species))])
        with g.transaction() as db:
            db.executemany("INSERT INTO local_features VALUES (?, ?, ?)",
                           [(i, args.matcher, blobs[int(k) % len(real)]) for i, k in zip(ids, order)])
        t = time.perf_counter()
        report = recalibrate(g, shortlist=20)
        calib_s = time.perf_counter() - t
        qimgs = [rdata.read_sample(r._asdict()) for r in queries.itertuples(index=False)]
        timings: dict[str, list[float]] = {"global": [], "fused@20": [], "fused@100": []}
        for img in qimgs + qimgs[:2]:  # the first two warm up caches; they are timed again at the end
            t = time.perf_counter()
            e = model.embed([img])
            g.search(e, k=5)
            timings["global"].append(time.perf_counter() - t)
            for b in (20, 100):
                t = time.perf_counter()
                e = model.embed([img])
                identify(g, e, img, k=5, shortlist=b)
                timings[f"fused@{b}"].append(time.perf_counter() - t)
        med = {k: float(np.median(v[2:])) for k, v in timings.items()}
        result = {"gallery_images": len(g), "queries": len(qimgs), "matcher": args.matcher, "model": args.model,
                  "median_ms": {k: round(1000 * v, 1) for k, v in med.items()},
                  "p90_ms": {k: round(1000 * float(np.percentile(v[2:], 90)), 1) for k, v in timings.items()},
                  "ratio_to_global": {k: round(v / med["global"], 2) for k, v in med.items()},
                  "recalibrate_s": round(calib_s, 1),
                  "calibrated_species": sorted(k for k in report if k not in ("open_set",)),
                  "machine": machine_info()}
        g.close()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("median_ms", "p90_ms", "ratio_to_global")}, indent=1))


if __name__ == "__main__":
    main()
