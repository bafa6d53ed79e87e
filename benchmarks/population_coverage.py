"""Does the abundance interval cover the true N once identification errs? Simulated closed populations (the only
place N is known): N animals, each caught on each of K occasions with probability p (`--heterogeneity SD`: each
animal's own probability, SD on the logit scale). Identification links sightings by decisions with a calibrated
P(same): true links between successive sightings of one animal, false links between sightings of two animals
(0.25 or 1 per sighting), P(same) from two Beta score distributions and the share of true links; the point
assignment takes every link with P >= 0.5, which makes the setting's false-new and false-merge rates. Per setting
and repetition: the estimator's interval (`--method`, default Chao's Mh) from the point assignment (identities as
certain), from the true identities, and over 100 assignments drawn link by link from P(same) (the pooling of
`reid-hub population`). Reports each interval's coverage of N and the realised error rates.
Writes results/population_coverage[_METHOD][_hetSD].json.
Usage: python benchmarks/population_coverage.py [--reps 40] [--method chao_mh] [--heterogeneity 0]
"""
from __future__ import annotations

import argparse
import itertools
import json
import time

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.special import expit, logit
from scipy.stats import beta

from reid_hub.evaluation.runner import machine_info
from reid_hub.population.estimators import ESTIMATORS, choose_method
from reid_hub.population.report import pooled_estimate

from common import RESULTS  # the benchmarks' shared helpers

#: score distributions of true and false links (Beta parameters) for each identification quality
QUALITY = {"good": (8.0, 2.0), "fair": (4.0, 2.0), "poor": (2.5, 1.6)}


def simulate(n: int, p: float, k: int, quality: str, false_links: float, rng: np.random.Generator,
             draws: int = 100, method: str = "chao_mh", spread: float = 0.0) -> dict:
    p_i = p if spread == 0 else expit(logit(p) + spread * rng.standard_normal((n, 1)))  # heterogeneity
    caught = rng.random((n, k)) < p_i
    animal, occasion = np.nonzero(caught)
    m = len(animal)
    order = np.argsort(animal, kind="stable")
    same_next = animal[order][1:] == animal[order][:-1]
    true_links = list(zip(order[:-1][same_next].tolist(), order[1:][same_next].tolist()))
    n_false = int(round(false_links * m))
    false = []
    while len(false) < n_false and m > 1:
        a, b = rng.integers(m, size=2)
        if animal[a] != animal[b]:
            false.append((int(a), int(b)))
    links = np.array(true_links + false, np.int64).reshape(-1, 2)
    is_true = np.r_[np.ones(len(true_links), bool), np.zeros(len(false), bool)]
    ta, tb = QUALITY[quality]
    score = np.where(is_true, rng.beta(ta, tb, len(links)), rng.beta(tb, ta, len(links)))
    prior = is_true.mean() if len(links) else 0.5
    f_t, f_f = beta.pdf(score, ta, tb), beta.pdf(score, tb, ta)
    p_same = prior * f_t / np.maximum(prior * f_t + (1 - prior) * f_f, 1e-300)

    def history(take: np.ndarray) -> np.ndarray:
        sel = links[take]
        graph = sp.coo_matrix((np.ones(len(sel)), (sel[:, 0], sel[:, 1])), shape=(m, m))
        ids = connected_components(graph, directed=False)[1]
        h = np.zeros((int(ids.max()) + 1 if m else 0, k), bool)
        h[ids, occasion] = True
        return h

    point = history(p_same >= 0.5)
    estimator = ESTIMATORS[choose_method(point)[0] if method == "auto" else method]
    certain = estimator(point)
    drawn = [history(rng.random(len(links)) < p_same) for _ in range(draws)]
    unc = pooled_estimate(drawn, estimator, rng)
    false_new = float(((p_same < 0.5) & is_true).sum() / max(is_true.sum(), 1))
    false_merge = float(((p_same >= 0.5) & ~is_true).sum() / max(n, 1))
    truth_h = np.zeros((n, k), bool)
    truth_h[animal, occasion] = True
    oracle = estimator(truth_h[truth_h.any(axis=1)])
    return {"certain": (certain.lower, certain.upper), "uncertain": (unc["lower"], unc["upper"]),
            "oracle": (oracle.lower, oracle.upper), "false_new": false_new, "false_merge": false_merge}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=40)
    ap.add_argument("--method", choices=["chao_mh", "schnabel", "chapman", "auto"], default="chao_mh")
    ap.add_argument("--heterogeneity", type=float, default=0.0,
                    help="sd of the animals' capture probabilities on the logit scale (0: all alike)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    t0 = time.perf_counter()
    for n, p, k, quality, false_links in itertools.product((20, 50, 200), (0.1, 0.3, 0.5), (5, 10, 20),
                                                            QUALITY, (0.25, 1.0)):
        cover = {"certain": 0, "uncertain": 0, "oracle": 0}
        rates = []
        for _ in range(args.reps):
            r = simulate(n, p, k, quality, false_links, rng, method=args.method, spread=args.heterogeneity)
            for key in cover:
                lo, hi = r[key]
                cover[key] += int(lo is not None and lo <= n <= hi)
            rates.append((r["false_new"], r["false_merge"]))
        fn, fm = np.mean(rates, axis=0)
        rows.append({"N": n, "p": p, "occasions": k, "quality": quality, "false_candidates_per_sighting": false_links,
                     "false_new": round(float(fn), 3), "false_merge": round(float(fm), 3),
                     **{f"coverage_{key}": round(v / args.reps, 3) for key, v in cover.items()}})
        print(rows[-1], flush=True)
    res = {"machine": machine_info(), "reps": args.reps, "seconds": round(time.perf_counter() - t0, 1),
           "settings": rows}
    in_range = [r for r in rows if 0.05 <= r["false_new"] <= 0.4 and 0.02 <= r["false_merge"] <= 0.15]
    res["summary"] = {"settings": len(rows), "settings_with_issue_error_rates": len(in_range),
                      "mean_coverage_uncertain": round(float(np.mean([r["coverage_uncertain"] for r in in_range])), 3)
                      if in_range else None,
                      "mean_coverage_certain": round(float(np.mean([r["coverage_certain"] for r in in_range])), 3)
                      if in_range else None,
                      "share_uncertain_at_least_0.9": round(float(np.mean([r["coverage_uncertain"] >= 0.9
                                                                          for r in in_range])), 3) if in_range else None}
    res["method"], res["heterogeneity"] = args.method, args.heterogeneity
    name = "population_coverage" + ("" if args.method == "chao_mh" else f"_{args.method}") + (
        f"_het{args.heterogeneity:g}" if args.heterogeneity else "") + ".json"
    (RESULTS / name).write_text(json.dumps(res, indent=2))
    print(json.dumps(res["summary"], indent=2))


if __name__ == "__main__":
    main()
