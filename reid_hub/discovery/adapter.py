"""A per-species adapter learnt from answered pairs and the collection's structure: a low-rank linear map on the
frozen embeddings, x -> normalise(x (I + U V^T)), trained with a sigmoid loss on same / different pairs (as the
video head learns from its pseudo-labels), while random unlabelled pairs keep their cosine (so identities nobody
answered about stay where they were). It is kept only when it finds held-out animals' partners better than the
embedding alone; otherwise the species falls back to no adapter."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..data.atomic import atomic_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdapterConfig:
    """Rank of the update, training steps, learning rate, weight of the keep-the-cosine term, the fewest pairs
    of each kind before an adapter is tried, the most pairs trained on, and the folds of the held-out check."""

    rank: int = 16
    steps: int = 150
    lr: float = 0.01
    keep_weight: float = 0.001
    min_pairs: int = 8
    max_pairs: int = 20000
    check_folds: int = 3
    seed: int = 0


class PairAdapter:
    """x -> normalise(x + (x U) V^T); the identity when `u` is None."""

    def __init__(self, u: Optional[np.ndarray] = None, v: Optional[np.ndarray] = None,
                 report: Optional[dict] = None) -> None:
        self.u, self.v, self.report = u, v, dict(report or {})

    @property
    def is_identity(self) -> bool:
        return self.u is None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        if self.u is None:
            return x
        y = x + (x @ self.u) @ self.v.T
        return (y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    def save(self, path: str | Path) -> None:
        """Write the adapter as .npz (atomically)."""
        with atomic_path(path) as tmp:
            if self.u is None:
                np.savez(tmp, identity=np.array(True))
            else:
                np.savez(tmp, u=self.u, v=self.v)

    @classmethod
    def load(cls, path: str | Path) -> "PairAdapter":
        z = np.load(path)
        return cls() if "identity" in z.files else cls(z["u"], z["v"])


def _pair_cosines(x: torch.Tensor, u: torch.Tensor, v: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                  dot: torch.Tensor) -> torch.Tensor:
    """Cosine of rows a and b after x -> x + (x U) V^T, in the rank-r space only: with P = xU, Q = xV,
    z_a.z_b = x_a.x_b + P_a.Q_b + P_b.Q_a + P_a (V^T V) P_b (and the same for the norms), so no d-sized
    row is gathered per pair."""
    p, q, vv = x @ u, x @ v, v.T @ v
    pv = p @ vv
    sq = (x * x).sum(1) + 2 * (p * q).sum(1) + (pv * p).sum(1)
    inner = dot + (p[a] * q[b]).sum(1) + (p[b] * q[a]).sum(1) + (pv[a] * p[b]).sum(1)
    return inner / (sq[a] * sq[b]).clamp_min(1e-12).sqrt()


def _train(x: np.ndarray, a: np.ndarray, b: np.ndarray, y: np.ndarray, cfg: AdapterConfig) -> PairAdapter:
    g = torch.Generator().manual_seed(cfg.seed)
    xt = torch.from_numpy(np.asarray(x, np.float32))
    d = xt.shape[1]
    u = torch.nn.Parameter(torch.randn(d, cfg.rank, generator=g) / d ** 0.5)
    v = torch.nn.Parameter(torch.zeros(d, cfg.rank))
    at, bt, yt = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(y.astype(np.float32))
    dot = (xt[at] * xt[bt]).sum(1)
    scale = torch.nn.Parameter(torch.tensor(10.0))
    bias = torch.nn.Parameter(-10.0 * dot.mean().detach())
    ra = torch.randint(0, len(xt), (4096,), generator=g)
    rb = torch.randint(0, len(xt), (4096,), generator=g)
    keep0 = (xt[ra] * xt[rb]).sum(1)
    pos_w = torch.tensor(float((1 - y).sum() / max(y.sum(), 1)))  # balance same and different answers
    opt = torch.optim.Adam([u, v, scale, bias], lr=cfg.lr)
    for _ in range(cfg.steps):
        logit = scale * _pair_cosines(xt, u, v, at, bt, dot) + bias
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, yt, pos_weight=pos_w)
        keep = (_pair_cosines(xt, u, v, ra, rb, keep0) - keep0).pow(2).mean()
        opt.zero_grad()
        (loss + cfg.keep_weight * 100 * keep).backward()
        opt.step()
    return PairAdapter(u.detach().numpy().copy(), v.detach().numpy().copy())


def _component_top1(z: np.ndarray, rows: np.ndarray, comp: np.ndarray) -> float:
    """Share of `rows` whose nearest other row *among `rows`* lies in their own component. (Searching the whole
    collection counted a right answer as a miss whenever the nearest image was an unlinked photo of the same
    animal: the check read 0.000 for the plain embedding on dogs, whose leave-one-out top-1 is 0.89.)"""
    rows = np.asarray(rows)
    sims = z[rows] @ z[rows].T
    np.fill_diagonal(sims, -np.inf)
    return float((comp[rows[np.argmax(sims, axis=1)]] == comp[rows]).mean())


def fit_adapter(x: np.ndarray, a: np.ndarray, b: np.ndarray, same: np.ndarray, components: np.ndarray,
                cfg: AdapterConfig = AdapterConfig()) -> PairAdapter:
    """An adapter for the embeddings `x` of one species from labelled pairs (a, b, same), or the identity when
    the pairs are too few or the check fails. The check is cross-fitted: the must-link `components` (one id per
    row) with two rows or more are split into `cfg.check_folds` folds; for each fold an adapter is trained without
    any pair that touches it, and the adapter is kept only when, in every fold, it finds the held-out rows'
    partners (leave-one-out top-1 among the fold's rows) clearly more often than the embedding alone (two rows and 2
    points at least): the held-out animals stand for the animals nobody answered about. (One held-out quarter let
    a harmful adapter in on 2 of 4 seeds on lion; see docs/discovery.md.)"""
    same = np.asarray(same, bool)
    if same.sum() < cfg.min_pairs or (~same).sum() < cfg.min_pairs:
        return PairAdapter(report={"used": False, "reason": "too few answered pairs"})
    comp = np.asarray(components)
    ids, counts = np.unique(comp, return_counts=True)
    multi = ids[counts > 1]
    if len(multi) < 2 * cfg.check_folds:
        return PairAdapter(report={"used": False, "reason": "too few confirmed animals to check an adapter on"})
    rng = np.random.default_rng(cfg.seed)
    folds = np.array_split(rng.permutation(multi), cfg.check_folds)
    hits_base = hits_adapted = rows = 0
    per_fold = []
    for held in folds:
        test_rows = np.nonzero(np.isin(comp, held))[0]
        train = ~(np.isin(comp[a], held) | np.isin(comp[b], held))
        if same[train].sum() < cfg.min_pairs // 2 or (~same[train]).sum() < cfg.min_pairs // 2:
            return PairAdapter(report={"used": False, "reason": "too few pairs left to train beside the check"})
        if train.sum() > cfg.max_pairs:
            train[rng.choice(np.nonzero(train)[0], int(train.sum()) - cfg.max_pairs, replace=False)] = False
        trial = _train(x, a[train], b[train], same[train], cfg)
        base, adapted = _component_top1(x, test_rows, comp), _component_top1(trial(x), test_rows, comp)
        per_fold.append({"rows": int(len(test_rows)), "top1_embedding": base, "top1_adapter": adapted})
        hits_base += base * len(test_rows)
        hits_adapted += adapted * len(test_rows)
        rows += len(test_rows)
    report = {"check_top1_embedding": hits_base / rows, "check_top1_adapter": hits_adapted / rows,
              "check_rows": int(rows), "check_folds": per_fold, "pairs": int(len(a)), "same_pairs": int(same.sum())}
    # two more animals found in every fold, at least: not chance
    if any(f["top1_adapter"] < f["top1_embedding"] + max(2 / f["rows"], 0.02) for f in per_fold):
        log.info("adapter not kept: held-out top-1 %.3f, %.3f without it", report["check_top1_adapter"],
                 report["check_top1_embedding"])
        return PairAdapter(report={**report, "used": False, "reason": "not better on held-out animals in every fold"})
    keep = np.ones(len(a), bool)
    if keep.sum() > cfg.max_pairs:
        keep[rng.choice(len(a), len(a) - cfg.max_pairs, replace=False)] = False
    final = _train(x, a[keep], b[keep], same[keep], cfg)
    final.report = {**report, "used": True}
    return final


__all__ = ["AdapterConfig", "PairAdapter", "fit_adapter"]
