"""A simulated reviewer for evaluation: it answers the questions a person would be shown, from a column of true
identities, batch by batch, on the same code path as a person (`answer` or `answer_group`, then `learn`), and
records how the grouping improves against what a person would have spent: actions, images shown and seconds
(`ReviewCost`: a fixed time per action plus a time per image looked at)."""
from __future__ import annotations

import logging
import time
from typing import Any, Optional, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..errors import ConfigError
from .answers import DIFFERENT, SAME, SKIP
from .session import Discovery
from .state import ReviewCost

log = logging.getLogger(__name__)

REVIEWS = ("pair", "group")


def held_out_identities(truth: np.ndarray, share: float, seed: int = 0) -> set[str]:
    """A fixed random `share` of the known identities, chosen before any question: no question may touch them."""
    ids = sorted({t for t in truth.tolist() if t})
    rng = np.random.default_rng(seed)
    return set(rng.choice(ids, size=int(round(share * len(ids))), replace=False).tolist()) if ids and share else set()


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


def curve_point(d: Discovery, truth: np.ndarray, n_answers: int, held_out: frozenset[str] = frozenset(),
                spent: Optional[dict[str, float]] = None) -> dict[str, Any]:
    """ARI, AMI, the number of groups and of true individuals, what the reviewer spent (`spent`: actions,
    images_shown, seconds), `top1_unasked` (leave-one-out top-1 in the adapted space over images of identities
    that no answered pair involves) and, with `held_out` identities, leave-one-out top-1 among their images in the
    adapted space and in the embedding alone (`top1_held_out`, `top1_held_out_embedding`)."""
    from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score

    known = truth != ""
    asked = {truth[r] for a, b, _ in d.answered() for r in (a, b)}
    unasked = np.nonzero(known & ~np.isin(truth, list(asked)))[0]
    species = np.unique(d.table["species"].astype(str), return_inverse=True)[1] if "species" in d.table else None
    top1 = leave_one_out_top1(d.emb, truth, unasked, species)
    extra: dict[str, Any] = {}
    if held_out:
        rows = np.nonzero(np.isin(truth, sorted(held_out)))[0]
        sub_species = species[rows] if species is not None else None
        for key, emb in (("top1_held_out", d.emb), ("top1_held_out_embedding", d.raw)):
            v = leave_one_out_top1(emb[rows], truth[rows], np.arange(len(rows)), sub_species)
            extra[key] = None if np.isnan(v) else v
    return {"answers": int(n_answers), **{k: (round(v, 2) if k == "seconds" else int(v))
                                          for k, v in (spent or {}).items()}, **extra,
            "ari": float(adjusted_rand_score(truth[known], d.labels[known])),
            "ami": float(adjusted_mutual_info_score(truth[known], d.labels[known])),
            "individuals": int(len(np.unique(d.labels))), "true_individuals": int(len(np.unique(truth[known]))),
            "top1_unasked": None if np.isnan(top1) else top1}


def simulate_reviewer(d: Discovery, truth: Sequence[Any], answers: int, batch: int = 10, actor: str = "simulated",
                      progress: bool = True, timings: Optional[list[float]] = None, review: str = "pair",
                      cost: ReviewCost = ReviewCost(), held_out: float = 0.0, seed: int = 0) -> list[dict[str, Any]]:
    """Take up to `answers` actions from `truth` (empty: unknown), `batch` at a time, learning after each batch;
    the curve has a point at 0 actions and after every batch. `review` "pair": one pair question per action
    (unknown identities answered "skip"); "group": one group reviewed per action, truthfully (the images whose
    identity is not the shown images' majority taken out, the rest confirmed, neighbours of that identity merged, the
    other neighbours shown judged apart).
    `held_out`: the share of identities no question may touch (their questions are passed over, not counted).
    `timings` receives the seconds each action took (recording and regrouping)."""
    if batch < 1 or answers < 0:
        raise ConfigError("--batch must be at least 1 and --answers at least 0")
    if review not in REVIEWS:
        raise ConfigError(f"review must be one of {REVIEWS}, got {review!r}")
    truth = np.array(["" if t is None or (isinstance(t, float) and np.isnan(t)) else str(t) for t in truth])
    hidden = frozenset(held_out_identities(truth, held_out, seed))
    spent = {"actions": 0, "images_shown": 0, "seconds": 0.0}
    curve = [curve_point(d, truth, 0, hidden, spent)]
    bar = tqdm(total=answers, desc="actions", unit="action", disable=not progress)
    passed: set[tuple[int, ...]] = set()
    while spent["actions"] < answers:
        before = spent["actions"]
        want = min(batch, answers - before)
        if review == "pair":
            done = _pair_batch(d, truth, hidden, want, actor, seed + before, spent, cost, timings)
        else:
            done = _group_batch(d, truth, hidden, want, actor, passed, spent, cost, timings)
        if not done:
            log.info("no question left after %d actions", spent["actions"])
            break
        d.learn()
        curve.append(curve_point(d, truth, spent["actions"], hidden, spent))
        bar.update(spent["actions"] - before)
    bar.close()
    return curve


def _spend(spent: dict[str, float], cost: ReviewCost, images: int) -> None:
    """One action showing `images` images, counted in what the reviewer spent."""
    spent["actions"] += 1
    spent["images_shown"] += images
    spent["seconds"] += cost.seconds(images)


def _pair_batch(d: Discovery, truth: np.ndarray, hidden: frozenset[str], want: int, actor: str, seed: int,
                spent: dict[str, float], cost: ReviewCost, timings: Optional[list[float]]) -> int:
    """Answer up to `want` pair questions; returns how many were answered."""
    done = 0
    while done < want:
        qs = d.questions(limit=want - done, seed=seed + done)
        if not qs:
            break
        for q in qs:
            ta, tb = truth[q.a], truth[q.b]
            if ta in hidden or tb in hidden:  # passed over: recorded as a skip so it is not asked again
                d.answers.record(d.keys[q.a], d.keys[q.b], SKIP, f"{actor}:held-out")
                continue
            t0 = time.perf_counter()
            d.answer(q.a, q.b, SKIP if not ta or not tb else SAME if ta == tb else DIFFERENT, actor)
            if timings is not None:
                timings.append(time.perf_counter() - t0)
            _spend(spent, cost, 2)
            done += 1
    return done


def _group_batch(d: Discovery, truth: np.ndarray, hidden: frozenset[str], want: int, actor: str,
                 passed: set[tuple[int, ...]], spent: dict[str, float], cost: ReviewCost,
                 timings: Optional[list[float]]) -> int:
    """Review up to `want` groups truthfully; returns how many were reviewed."""
    done = 0
    while done < want:
        qs = [q for q in d.group_questions(limit=want - done + len(passed)) if q.rows not in passed]
        if not qs:
            break
        q = qs[0]
        shown = [r for r in q.rows if truth[r] and truth[r] not in hidden]
        if not shown:
            passed.add(q.rows)
            continue
        ids, counts = np.unique(truth[shown], return_counts=True)
        major = ids[np.argmax(counts)]
        out = [r for r in shown if truth[r] != major]
        beside = [rows[0] for _, rows, _ in q.neighbours if rows and truth[rows[0]] and truth[rows[0]] not in hidden]
        merge = [r for r in beside if truth[r] == major]
        apart = [r for r in beside if truth[r] != major]
        passed.add(q.rows)
        _spend(spent, cost, q.images_shown)
        done += 1
        if len(shown) - len(out) < 2 and not out and not beside:
            continue  # one image of the animal and nothing beside it: looked at, nothing to say
        t0 = time.perf_counter()
        d.answer_group(shown, out, merge, actor, apart)
        if timings is not None:
            timings.append(time.perf_counter() - t0)
    return done


__all__ = ["simulate_reviewer", "curve_point", "leave_one_out_top1", "ReviewCost", "REVIEWS", "held_out_identities"]
