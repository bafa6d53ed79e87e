"""Gallery search cost vs raw FAISS on the same index, and recall@10 of IVF/HNSW vs exact search.

Vectors: embeddings of real photos by the released model, perturbed with noise to reach each size
(5 vectors per simulated individual), unit-normalised. For each size and index kind, the Gallery's
search (FAISS + per-individual aggregation + SQLite row lookup) is timed against `index.search` on the
very same FAISS index with the same depth: single queries (p50/p99 latency) and a batch of 100.
ivfpq is IVF with product quantisation (dim/8 bytes per vector); the gallery re-ranks its shortlist
with exact vectors, the raw baseline does not. Also reported: index bytes per vector (its RAM when
loaded; memory-mapped IVF lists stay on disk).
Writes benchmarks/results/gallery_search.json.
Usage: python benchmarks/gallery_search.py [--sizes 10000 100000 1000000] [--kinds flat ivf hnsw ivfpq]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from reid_hub.evaluation.runner import machine_info
from reid_hub.gallery import Gallery

from common import real_embeddings, synth  # the benchmarks' shared helpers

HERE = Path(__file__).resolve().parent






def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--kinds", nargs="*", default=["flat", "ivf", "hnsw"])
    ap.add_argument("--hnsw-max", type=int, default=100_000, help="skip HNSW above this size (build time)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--model", default="multispecies-v1")
    ap.add_argument("--out", default=str(HERE / "results" / "gallery_search.json"))
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    threads = faiss.omp_get_max_threads()
    base = real_embeddings(300, args.model)
    report = {"model": args.model, "dim": int(base.shape[1]), "results": [], "machine": machine_info(),
              "threads": faiss.omp_get_max_threads()}
    for n in args.sizes:
        x = synth(base, n, rng)
        q = synth(base, args.queries, rng)
        labels = [f"i{k // 5}" for k in range(n)]
        exact_ids = None
        for kind in args.kinds:
            if kind == "hnsw" and n > args.hnsw_max:
                continue
            with tempfile.TemporaryDirectory() as tmp:
                g = Gallery(tmp, "bench", "bench", x.shape[1])
                t0 = time.perf_counter()
                g.update_settings(index_kind=kind)
                g.ingest(labels, x)
                build = time.perf_counter() - t0
                depth = 60  # what Gallery.search asks FAISS for at k=5, 3 images per match
                idx = g.index
                # the raw baseline gets the same one-thread setting the gallery uses for single queries
                faiss.omp_set_num_threads(1)
                single_raw = timed(lambda: idx.search(q[:1], depth), 3)  # warm-up
                single_raw = [timed(lambda i=i: idx.search(q[i:i + 1], depth), 1)[0] for i in range(len(q))]
                faiss.omp_set_num_threads(threads)
                single_gal = [timed(lambda i=i: g.search(q[i:i + 1], k=5), 1)[0] for i in range(len(q))]
                batch_raw = min(timed(lambda: idx.search(q[:100], depth), 3))
                batch_gal = min(timed(lambda: g.search(q[:100], k=5), 3))
                _, top = idx.search(q, 10)
                if kind == "flat":
                    exact_ids = top
                recall = (float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top, exact_ids)]))
                          if exact_ids is not None else None)
                _, short = idx.search(q, depth)  # what the gallery does for ivfpq: exact re-rank of its shortlist
                exact_scores = np.einsum("qd,qkd->qk", q, x[np.clip(short, 1, n) - 1])
                reranked = np.take_along_axis(short, np.argsort(-exact_scores, axis=1)[:, :10], 1)
                recall_rr = (float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(reranked, exact_ids)]))
                             if exact_ids is not None else None)
                row = {"size": n, "kind": kind, "build_s": round(build, 2),
                       "raw_p50_ms": 1e3 * float(np.percentile(single_raw, 50)),
                       "raw_p99_ms": 1e3 * float(np.percentile(single_raw, 99)),
                       "gallery_p50_ms": 1e3 * float(np.percentile(single_gal, 50)),
                       "gallery_p99_ms": 1e3 * float(np.percentile(single_gal, 99)),
                       "raw_batch100_qps": 100 / batch_raw, "gallery_batch100_qps": 100 / batch_gal,
                       "recall_at_10_vs_exact": recall, "recall_at_10_reranked_shortlist": recall_rr,
                       "index_bytes_per_vector": g.index_path.stat().st_size / n}
                row["p50_ratio"] = row["gallery_p50_ms"] / row["raw_p50_ms"]
                row["batch_ratio"] = batch_gal / batch_raw
                report["results"].append(row)
                g.close()
                print(f"{n:>8d} {kind:5s} build {build:7.1f}s  p50 {row['gallery_p50_ms']:7.2f} ms vs raw "
                      f"{row['raw_p50_ms']:7.2f} (x{row['p50_ratio']:.2f})  p99 {row['gallery_p99_ms']:7.2f}  "
                      f"batch x{row['batch_ratio']:.2f}  recall@10 {recall if recall is None else round(recall, 3)}",
                      flush=True)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
