"""The candidate graph of a collection: each image's nearest neighbours by embedding, re-scored by how much their
neighbourhoods agree (k-reciprocal encoding with Jaccard similarity, Zhong et al. 2017).

The Jaccard similarity is rank based: it does not depend on where a species' cosine scores happen to lie, which is
what lets one label-free threshold serve species the model never saw.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import faiss
import numpy as np
import scipy.sparse as sp

from ..errors import DataError


@dataclass(frozen=True)
class GraphConfig:
    """How the candidate graph is built: `k` neighbours per image become candidate edges; `k1`/`k2` are the
    k-reciprocal encoding's neighbourhood and query-expansion sizes."""

    k: int = 20
    k1: int = 20
    k2: int = 6


@dataclass
class CandidateGraph:
    """Undirected candidate pairs (i < j) with their cosine and Jaccard (neighbourhood agreement) similarities,
    and P(same) from local verification (`local`, 0 where a pair was not verified). A pair's `similarity` is
    the stronger of its Jaccard similarity and its local P(same): either kind of evidence can join two images."""

    n: int
    i: np.ndarray
    j: np.ndarray
    cosine: np.ndarray
    jaccard: np.ndarray
    encoding: sp.csr_matrix
    local: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.i)

    @property
    def similarity(self) -> np.ndarray:
        return self.jaccard if self.local is None else np.maximum(self.jaccard, self.local)

    def with_local(self, emb: np.ndarray, i: np.ndarray, j: np.ndarray, p_same: np.ndarray,
                   min_p: float = 0.05) -> "CandidateGraph":
        """This graph of embeddings `emb` plus local evidence: verified pairs with P(same) above `min_p` become
        edges too (their Jaccard similarity computed from the encoding), and every edge carries its local P(same)."""
        keep = np.asarray(p_same) > min_p
        n = max(self.n, 1)
        own = self.i * n + self.j
        extra = np.asarray(i, np.int64)[keep] * n + np.asarray(j, np.int64)[keep]
        keys = np.union1d(own, extra)
        a, b = keys // n, keys % n
        jac = np.empty(len(keys))
        pos = np.searchsorted(keys, own)
        jac[pos] = self.jaccard
        new = np.ones(len(keys), bool)
        new[pos] = False
        if new.any():
            jac[new] = self.jaccard_of(a[new], b[new])
        cos = np.einsum("nd,nd->n", emb[a], emb[b]).astype(np.float64)
        local = np.zeros(len(keys))
        local[np.searchsorted(keys, extra)] = np.asarray(p_same, float)[keep]
        return CandidateGraph(self.n, a, b, cos, jac, self.encoding, local)

    def pair_index(self) -> dict[tuple[int, int], int]:
        """(i, j) with i < j -> edge position."""
        return {(int(a), int(b)): e for e, (a, b) in enumerate(zip(self.i, self.j))}

    def jaccard_of(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The Jaccard similarity of any pairs of rows, in the graph or not."""
        return jaccard_similarity(self.encoding, np.asarray(a, np.int64), np.asarray(b, np.int64))


def knn(emb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's `k` nearest other rows by inner product (indices, similarities), best first; -1 pads."""
    x = np.ascontiguousarray(emb, dtype=np.float32)
    n = len(x)
    k = max(1, min(k, n - 1))
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    sims, idx = index.search(x, k + 1)
    out_i = np.full((n, k), -1, np.int64)
    out_s = np.full((n, k), -np.inf, np.float32)
    for r in range(n):
        keep = (idx[r] != r) & (idx[r] >= 0)
        row_i, row_s = idx[r][keep][:k], sims[r][keep][:k]
        out_i[r, :len(row_i)], out_s[r, :len(row_s)] = row_i, row_s
    return out_i, out_s


def _reciprocal_encoding(nn_i: np.ndarray, nn_s: np.ndarray, k1: int, k2: int) -> sp.csr_matrix:
    """Row i: weights over i's expanded k-reciprocal neighbours (Gaussian of the cosine distance), L1-normalised,
    then averaged over its k2 nearest neighbours (local query expansion)."""
    n = len(nn_i)
    k1 = min(k1, nn_i.shape[1])
    near = [set(nn_i[r, :k1][nn_i[r, :k1] >= 0].tolist()) | {r} for r in range(n)]
    half = max(1, int(round(k1 / 2)))
    near_half = [set(nn_i[r, :half][nn_i[r, :half] >= 0].tolist()) | {r} for r in range(n)]
    recip = [{j for j in near[r] if r in near[j]} for r in range(n)]
    recip_half = [{j for j in near_half[r] if r in near_half[j]} for r in range(n)]
    sim_of = [dict(zip(nn_i[r].tolist(), nn_s[r].tolist())) for r in range(n)]
    rows, cols, vals = [], [], []
    for r in range(n):
        expanded = set(recip[r])
        for j in recip[r]:
            cand = recip_half[j]
            if len(cand & recip[r]) > 2 / 3 * len(cand):
                expanded |= cand
        members = sorted(expanded)
        s = np.array([1.0 if j == r else sim_of[r].get(j, _cos_from(sim_of, j, r)) for j in members])
        w = np.exp(-(1.0 - s))  # exp(-distance), distance = 1 - cosine
        rows.extend([r] * len(members))
        cols.extend(members)
        vals.extend((w / w.sum()).tolist())
    v = sp.csr_matrix((vals, (rows, cols)), shape=(n, n), dtype=np.float64)
    if k2 > 1:
        k2 = min(k2, nn_i.shape[1] + 1)
        qe_rows, qe_cols = [], []
        for r in range(n):
            nb = [r] + [j for j in nn_i[r, :k2 - 1].tolist() if j >= 0]
            qe_rows.extend([r] * len(nb))
            qe_cols.extend(nb)
        counts = np.bincount(qe_rows, minlength=n).astype(np.float64)
        avg = sp.csr_matrix((1.0 / counts[qe_rows], (qe_rows, qe_cols)), shape=(n, n))
        v = avg @ v
    return v.tocsr()


def _cos_from(sim_of: list[dict[int, float]], a: int, b: int) -> float:
    """The cosine of (b, a) seen from a's neighbour list (the graph is not symmetric); 0 where neither lists it."""
    return sim_of[a].get(b, 0.0)


def jaccard_similarity(v: sp.csr_matrix, i: np.ndarray, j: np.ndarray, chunk: int = 20000) -> np.ndarray:
    """sum(min(v_i, v_j)) / sum(max(v_i, v_j)) for each pair, on L1-normalised rows."""
    out = np.empty(len(i))
    totals = np.asarray(v.sum(axis=1)).ravel()
    for s in range(0, len(i), chunk):
        a, b = i[s:s + chunk], j[s:s + chunk]
        diff = abs(v[a] - v[b])
        l1 = np.asarray(diff.sum(axis=1)).ravel()
        tot = totals[a] + totals[b]
        mn = (tot - l1) / 2
        out[s:s + chunk] = mn / np.maximum(tot - mn, 1e-12)
    return out


def build_graph(emb: np.ndarray, config: GraphConfig = GraphConfig()) -> CandidateGraph:
    """The candidate graph of L2-normalised embeddings: each image's `k` nearest neighbours, scored."""
    emb = np.asarray(emb, dtype=np.float32)
    if emb.ndim != 2 or len(emb) < 2:
        raise DataError("discovery needs at least two images")
    if not np.isfinite(emb).all():
        raise DataError("embeddings contain NaN or infinite values")
    depth = max(config.k, config.k1)
    nn_i, nn_s = knn(emb, depth)
    pairs = set()
    for r in range(len(emb)):
        for c in nn_i[r, :config.k].tolist():
            if c >= 0:
                pairs.add((min(r, c), max(r, c)))
    arr = np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)
    i, j = arr[:, 0], arr[:, 1]
    cos = np.einsum("nd,nd->n", emb[i], emb[j]).astype(np.float64)
    v = _reciprocal_encoding(nn_i, nn_s, config.k1, config.k2)
    return CandidateGraph(len(emb), i, j, cos, jaccard_similarity(v, i, j), v)


__all__ = ["GraphConfig", "CandidateGraph", "build_graph", "knn", "jaccard_similarity"]
