"""A simulated reviewer for evaluation: it answers the questions a person would be shown, from a column of true
identities, batch by batch, on the same code path as a person (`Discovery.answer`, then `Discovery.learn`), and
records how the grouping improves."""
from __future__ import annotations

import logging
import time
from typing import Any, Optional, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..errors import ConfigError
from .answers import DIFFERENT, SAME, SKIP
from .session import Discovery

log = logging.getLogger(__name__)


def leave_one_out_top1(emb: np.ndarray, truth: np.ndarray, queries: np.ndarray,
                       groups: Optional[np.ndarray] = None) -> float:
    """Top-1 of each query row against every other row (of its `groups` value, e.g. species); queries whose
    identity has no other row are skipped. NaN when no query is left."""
    hits, n = 0, 0
    groups = np.zeros(len(emb), np.int64) if groups is None else groups
    for g in np.unique(groups[queries]):
        pool = np.nonzero(groups == g)[0]
        q = queries[groups[queries] == g]
        sims = emb[q] @ emb[pool].T
        sims[pool[None, :] == q[:, None]] = -np.inf
        ok = np.array([(truth[pool] == truth[r]).sum() > 1 for r in q])
        if not ok.any():
            continue
        best = pool[np.argmax(sims[ok], axis=1)]
        hits += int((truth[best] == truth[q[ok]]).sum())
        n += int(ok.sum())
    return hits / n if n else float("nan")


def curve_point(d: Discovery, truth: np.ndarray, n_answers: int) -> dict[str, Any]:
    """ARI, AMI, the number of groups and of true individuals, and `top1_unasked` (leave-one-out top-1 in the
    adapted space over images of identities that no answered pair involves)."""
    from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score

    known = truth != ""
    asked = {truth[r] for a, b, _ in d.answered() for r in (a, b)}
    unasked = np.nonzero(known & ~np.isin(truth, list(asked)))[0]
    species = np.unique(d.table["species"].astype(str), return_inverse=True)[1] if "species" in d.table else None
    top1 = leave_one_out_top1(d.emb, truth, unasked, species)
    return {"answers": int(n_answers),
            "ari": float(adjusted_rand_score(truth[known], d.labels[known])),
            "ami": float(adjusted_mutual_info_score(truth[known], d.labels[known])),
            "individuals": int(len(np.unique(d.labels))), "true_individuals": int(len(np.unique(truth[known]))),
            "top1_unasked": None if np.isnan(top1) else top1}


def simulate_reviewer(d: Discovery, truth: Sequence[Any], answers: int, batch: int = 10, actor: str = "simulated",
                      progress: bool = True, timings: Optional[list[float]] = None) -> list[dict[str, Any]]:
    """Answer up to `answers` questions from `truth` (empty: unknown, answered "skip"), `batch` at a time, learning
    after each batch; the curve has a point at 0 answers and after every batch (`top1_unasked` None once every
    identity has been asked about). `timings` receives the seconds each answer took (recording and regrouping)."""
    if batch < 1 or answers < 0:
        raise ConfigError("--batch must be at least 1 and --answers at least 0")
    truth = np.array(["" if t is None or (isinstance(t, float) and np.isnan(t)) else str(t) for t in truth])
    given = 0
    curve = [curve_point(d, truth, 0)]
    bar = tqdm(total=answers, desc="answers", unit="answer", disable=not progress)
    while given < answers:
        qs = d.questions(limit=min(batch, answers - given), seed=given)
        if not qs:
            log.info("no question left after %d answers", given)
            break
        for q in qs:
            ta, tb = truth[q.a], truth[q.b]
            t0 = time.perf_counter()
            d.answer(q.a, q.b, SKIP if not ta or not tb else SAME if ta == tb else DIFFERENT, actor)
            if timings is not None:
                timings.append(time.perf_counter() - t0)
        given += len(qs)
        d.learn()
        curve.append(curve_point(d, truth, given))
        bar.update(len(qs))
    bar.close()
    return curve


__all__ = ["simulate_reviewer", "curve_point", "leave_one_out_top1"]
