"""FAISS indexes of a gallery: which kind to build, search with an optional id selector, the ids held."""
from __future__ import annotations

from typing import Optional

import faiss
import numpy as np

INDEX_KINDS = ("flat", "ivf", "hnsw", "ivfpq", "auto")
IVFPQ_MIN_VECTORS = 10_000  # below this a PQ codebook cannot be trained well: the index stays exact


def num_gpus() -> int:
    try:
        return int(faiss.get_num_gpus())
    except AttributeError:  # faiss-cpu
        return 0


def faiss_search(index: faiss.Index, q: np.ndarray, depth: int,
                 ids: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """FAISS search, restricted to the vectors whose ids are in `ids` when given (the filter acts inside the
    search, so a rare species' images are never cut off by a fixed depth over the whole gallery). A few
    queries run on one OpenMP thread, which avoids waking idle worker threads for work too small to split."""
    params = None if ids is None else search_parameters(index, np.asarray(ids, np.int64))
    if len(q) >= 16:
        return index.search(q, depth, params=params)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        return index.search(q, depth, params=params)
    finally:
        faiss.omp_set_num_threads(threads)


def search_parameters(index: faiss.Index, ids: np.ndarray) -> faiss.SearchParameters:
    """Search parameters that admit only `ids` and keep the index's own nprobe / efSearch."""
    sel = faiss.IDSelectorBatch(ids)
    base = faiss.downcast_index(index.index if hasattr(index, "id_map") else index)
    if isinstance(base, faiss.IndexIVF):
        params = faiss.SearchParametersIVF(sel=sel, nprobe=base.nprobe)
    elif isinstance(base, faiss.IndexHNSW):
        params = faiss.SearchParametersHNSW(sel=sel, efSearch=base.hnsw.efSearch)
    else:
        params = faiss.SearchParameters(sel=sel)
    params._selector = sel  # the parameters do not own the selector: keep it alive with them
    return params


def index_ids(index: faiss.Index) -> np.ndarray:
    """Every id an index holds: its id map, or the ids stored in its IVF lists."""
    if hasattr(index, "id_map"):
        return faiss.vector_to_array(index.id_map)
    ivf = faiss.extract_index_ivf(index) if not isinstance(index, faiss.IndexFlat) else None
    if ivf is None:
        return np.arange(index.ntotal, dtype=np.int64)
    lists = ivf.invlists
    out = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
           for i in range(ivf.nlist) if lists.list_size(i)]
    return np.concatenate(out).astype(np.int64) if out else np.zeros(0, np.int64)


def build_index(kind: str, dim: int, vectors: Optional[np.ndarray] = None) -> faiss.Index:
    """An empty (or, for IVF kinds, trained on `vectors`) index of `kind` with inner-product metric; every
    kind but IVF-PQ is wrapped in an IndexIDMap2 (IVF-PQ lists keep the ids themselves)."""
    n = 0 if vectors is None else len(vectors)
    if kind == "hnsw":
        base = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        base.hnsw.efConstruction = 80
        base.hnsw.efSearch = 128
    elif kind == "ivfpq" and n >= IVFPQ_MIN_VECTORS:
        nlist = int(max(8, min(4 * np.sqrt(n), n // 39)))
        m = next(c for c in (dim // 8, dim // 4, dim // 2, dim) if c and dim % c == 0)
        base = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(0)
        base.train(vectors[rng.choice(n, size=min(n, max(64 * nlist, 20_000)), replace=False)])
        base.nprobe = max(16, nlist // 8)
        return base  # IVF lists keep the ids themselves: no id map in RAM
    elif kind == "ivf" and n >= 64:
        nlist = int(max(8, min(4 * np.sqrt(n), n // 39)))
        base = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(0)
        sample = vectors[rng.choice(n, size=min(n, 256 * nlist), replace=False)]
        base.train(sample)
        base.nprobe = max(8, nlist // 16)
    else:
        base = faiss.IndexFlatIP(dim)
    return faiss.IndexIDMap2(base)


def base_kind(index: faiss.Index) -> str:
    """The kind of an index as built: flat, ivf, ivfpq or hnsw."""
    base = faiss.downcast_index(index.index if hasattr(index, "id_map") else index)
    if isinstance(base, faiss.IndexHNSW):
        return "hnsw"
    if isinstance(base, faiss.IndexIVFPQ):
        return "ivfpq"
    return "ivf" if isinstance(base, faiss.IndexIVF) else "flat"


__all__ = ["INDEX_KINDS", "IVFPQ_MIN_VECTORS", "num_gpus", "faiss_search", "search_parameters", "index_ids", "build_index", "base_kind"]
