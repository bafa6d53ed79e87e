"""IVF-PQ at 10M vectors with memory-mapped inverted lists: latency, recall@10 and memory per vector.

Raw FAISS only: at this size the Gallery's SQLite would hold 20 GB of float32 vectors, so the gallery
wrapper is measured up to 1M (gallery_search.py). Vectors are the released model's embeddings of real
photos plus noise (as in gallery_search.py), generated in seeded chunks and kept as a float16 memory
map for the exact ground truth and for re-ranking the shortlist (what the Gallery does with SQLite).
Writes benchmarks/results/ivfpq_10m.json.
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

from common import real_embeddings, synth  # the benchmarks' shared helpers

HERE = Path(__file__).resolve().parent


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--chunk", type=int, default=500_000)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--depth", type=int, default=60)
    ap.add_argument("--model", default="multispecies-v1")
    ap.add_argument("--workdir", default=tempfile.gettempdir())
    ap.add_argument("--out", default=str(HERE / "results" / "ivfpq_10m.json"))
    args = ap.parse_args()
    base = real_embeddings(300, args.model)
    d = base.shape[1]
    work = Path(tempfile.mkdtemp(dir=args.workdir))
    vecs = np.lib.format.open_memmap(work / "vectors.npy", mode="w+", dtype=np.float16, shape=(args.n, d))
    t0 = time.perf_counter()
    for start in range(0, args.n, args.chunk):
        stop = min(args.n, start + args.chunk)
        vecs[start:stop] = synth(base, stop - start, np.random.default_rng(start)).astype(np.float16)
    vecs.flush()
    t_gen = time.perf_counter() - t0
    nlist = int(np.sqrt(args.n))  # sqrt(n) lists: coarse assignment of 10M vectors stays minutes on 2 cores
    m = d // 8
    index = faiss.IndexIVFPQ(faiss.IndexFlatIP(d), d, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(1)
    t0 = time.perf_counter()
    index.train(np.asarray(vecs[np.sort(rng.choice(args.n, min(args.n, 32 * nlist), replace=False))], np.float32))
    t_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    for start in range(0, args.n, args.chunk):
        stop = min(args.n, start + args.chunk)
        index.add_with_ids(np.asarray(vecs[start:stop], np.float32), np.arange(start, stop, dtype=np.int64))
    t_add = time.perf_counter() - t0
    path = work / "index.faiss"
    faiss.write_index(index, str(path))
    del index
    before = rss_mb()
    index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
    rss_mmap = rss_mb() - before
    index.nprobe = max(16, nlist // 8)
    q = synth(base, args.queries, np.random.default_rng(10 ** 9))
    t0 = time.perf_counter()
    exact = np.zeros((args.queries, 10), dtype=np.int64)
    best = np.full((args.queries, 10), -np.inf, dtype=np.float32)
    for start in range(0, args.n, args.chunk):  # exact top-10 by chunks
        s = q @ np.asarray(vecs[start:start + args.chunk], np.float32).T
        top = np.argpartition(-s, 10, axis=1)[:, :10]
        cand_s = np.concatenate([best, np.take_along_axis(s, top, 1)], 1)
        cand_i = np.concatenate([exact, top + start], 1)
        keep = np.argsort(-cand_s, axis=1)[:, :10]
        best, exact = np.take_along_axis(cand_s, keep, 1), np.take_along_axis(cand_i, keep, 1)
    t_exact = time.perf_counter() - t0
    faiss.omp_set_num_threads(1)
    index.search(q[:1], args.depth)
    lat = []
    for i in range(args.queries):
        t = time.perf_counter()
        index.search(q[i:i + 1], args.depth)
        lat.append(time.perf_counter() - t)
    _, short = index.search(q, args.depth)
    raw_recall = float(np.mean([len(set(a[:10]) & set(b)) / 10 for a, b in zip(short, exact)]))
    rr = np.einsum("qd,qkd->qk", q, np.asarray(vecs[np.sort(np.unique(short))], np.float32)[
        np.searchsorted(np.sort(np.unique(short)), short)])
    reranked = np.take_along_axis(short, np.argsort(-rr, axis=1)[:, :10], 1)
    rr_recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(reranked, exact)]))
    report = {"n": args.n, "dim": d, "nlist": nlist, "pq_bytes_per_vector": m, "nprobe": index.nprobe,
              "index_file_bytes_per_vector": path.stat().st_size / args.n,
              "rss_mb_after_mmap_open": rss_mmap, "generate_s": t_gen, "train_s": t_train, "add_s": t_add,
              "exact_search_s_for_queries": t_exact, "p50_ms_one_thread": 1e3 * float(np.median(lat)),
              "p99_ms_one_thread": 1e3 * float(np.percentile(lat, 99)), "depth": args.depth,
              "recall_at_10_raw": raw_recall, "recall_at_10_reranked_shortlist": rr_recall,
              "machine": machine_info()}
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    for f in work.iterdir():
        f.unlink()
    work.rmdir()


if __name__ == "__main__":
    main()
