"""Closed-population abundance from a capture history (individuals x occasions, 0/1), with 95% intervals.

- `chapman`: Lincoln-Petersen with Chapman's correction, two occasions (Chapman 1951; variance Seber 1970);
  with more occasions, the first half against the second half of them, pooled.
- `schnabel`: several occasions, each animal marked at its first capture (Schnabel 1938, with Chapman's +1; the
  interval from the Poisson approximation of the recaptures, Seber 1982 s. 4.1).
- `chao_mh`: heterogeneous capture probabilities, Chao's (1987) lower-bound estimator of model Mh from the numbers
  of animals caught once (f1) and twice (f2), with its log-normal interval (Chao 1987, eq. 13-14).
- `naive`: the animals seen at least once (a lower bound).
Each returns an `Estimate` (never below the animals seen); one that the data cannot support (e.g. a single
occasion) has N None and a reason.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional

import numpy as np

Z = 1.959964


@dataclass(frozen=True)
class Estimate:
    """An abundance estimate: `N` with a 95% interval [`lower`, `upper`] (None where it cannot be computed)."""

    method: str
    N: Optional[float]
    lower: Optional[float]
    upper: Optional[float]
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _history(h: np.ndarray) -> np.ndarray:
    h = np.asarray(h, dtype=bool)
    if h.ndim != 2:
        raise ValueError("a capture history is a 2-D array: individuals x occasions")
    return h[h.any(axis=1)]


def naive(h: np.ndarray) -> Estimate:
    s = float(len(_history(h)))
    return Estimate("naive", s, s, s, "animals seen at least once")


def chapman(h: np.ndarray) -> Estimate:
    h = _history(h)
    k = h.shape[1]
    if k < 2:
        return Estimate("chapman", None, None, None, "needs two occasions or more")
    first, second = h[:, : k // 2].any(axis=1), h[:, k // 2:].any(axis=1)
    n1, n2, m2 = float(first.sum()), float(second.sum()), float((first & second).sum())
    n = (n1 + 1) * (n2 + 1) / (m2 + 1) - 1
    var = (n1 + 1) * (n2 + 1) * (n1 - m2) * (n2 - m2) / ((m2 + 1) ** 2 * (m2 + 2))
    seen = float(len(h))
    return Estimate("chapman", max(n, seen), max(seen, n - Z * np.sqrt(var)), max(seen, n + Z * np.sqrt(var)),
                    "first half of the occasions against the second" if k > 2 else "")


def schnabel(h: np.ndarray) -> Estimate:
    h = _history(h)
    if h.shape[1] < 2:
        return Estimate("schnabel", None, None, None, "needs two occasions or more")
    caught = h.sum(axis=0).astype(float)  # C_t
    first = np.argmax(h, axis=1)
    marked_before = np.array([(first < t).sum() for t in range(h.shape[1])], float)  # M_t
    recaptured = np.array([(h[:, t] & (first < t)).sum() for t in range(h.shape[1])], float)  # R_t
    cm, r = float((caught * marked_before).sum()), float(recaptured.sum())
    if cm == 0:
        return Estimate("schnabel", None, None, None, "no animal was marked before a later occasion")
    n = cm / (r + 1)
    # Poisson interval on the recaptures R, turned into N = sum(C M) / R (Seber 1982)
    lo_r, hi_r = max(r + 1 - Z * np.sqrt(r + 1), 0.5), r + 1 + Z * np.sqrt(r + 1)
    seen = float(len(h))
    return Estimate("schnabel", max(n, seen), max(seen, cm / hi_r), max(seen, cm / lo_r))


def chao_mh(h: np.ndarray) -> Estimate:
    h = _history(h)
    times = h.sum(axis=1)
    s, f1, f2 = float(len(h)), float((times == 1).sum()), float((times == 2).sum())
    if s == 0:
        return Estimate("chao_mh", 0.0, 0.0, 0.0, "no animal seen")
    if f2 > 0:
        n = s + f1 * f1 / (2 * f2)
        ratio = f1 / f2
        var = f2 * (ratio ** 4 / 4 + ratio ** 3 + ratio ** 2 / 2)
        note = ""
    else:  # bias-corrected form when no animal was seen twice
        n = s + f1 * (f1 - 1) / 2
        var = f1 * (f1 - 1) / 2 + f1 * (2 * f1 - 1) ** 2 / 4 - f1 ** 4 / (4 * n) if n > 0 else 0.0
        note = "no animal seen exactly twice: the bias-corrected form"
    extra = n - s
    if extra <= 0 or var <= 0:
        return Estimate("chao_mh", n, s, n, note)
    c = np.exp(Z * np.sqrt(np.log(1 + var / extra ** 2)))
    return Estimate("chao_mh", n, s + extra / c, s + extra * c, note)


ESTIMATORS = {"naive": naive, "chapman": chapman, "schnabel": schnabel, "chao_mh": chao_mh}


def heterogeneity_p(h: np.ndarray) -> float:
    """P-value of "every animal has the same capture probability" (model M0): Pearson's chi-square of how many
    animals were caught 1, 2, ... times against the zero-truncated binomial with the M0 capture probability (its
    mean matched; counts pooled so that each expected count is at least 5). Small: capture probabilities differ
    (Otis et al. 1978's test of M0 against Mh, in its simple form)."""
    from scipy.stats import binom, chi2

    h = _history(h)
    k = h.shape[1]
    times = h.sum(axis=1)
    s = len(times)
    if s < 10 or k < 3:
        return 1.0
    target = times.mean()  # E[times | caught] = k p / (1 - (1 - p)^k): solve for p by bisection
    lo, hi = 1e-6, 1 - 1e-6
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if k * mid / (1 - (1 - mid) ** k) < target else (lo, mid)
    p = (lo + hi) / 2
    expected = s * binom.pmf(np.arange(1, k + 1), k, p) / (1 - (1 - p) ** k)
    observed = np.bincount(times, minlength=k + 1)[1:]
    obs_g, exp_g, o, e = [], [], 0.0, 0.0
    for ob, ex in zip(observed, expected):  # pool from the top until each group expects 5 or more
        o, e = o + ob, e + ex
        if e >= 5:
            obs_g.append(o)
            exp_g.append(e)
            o = e = 0.0
    if e > 0 and exp_g:
        obs_g[-1] += o
        exp_g[-1] += e
    dof = len(exp_g) - 2  # groups - 1 - one fitted parameter
    if dof < 1:
        return 1.0
    stat = float(((np.array(obs_g) - np.array(exp_g)) ** 2 / np.array(exp_g)).sum())
    return float(chi2.sf(stat, dof))


def choose_method(h: np.ndarray, alpha: float = 0.05) -> tuple[str, float]:
    """Chao's Mh where the capture counts show heterogeneity (`heterogeneity_p` < alpha), else Schnabel (M0); and
    that p-value."""
    p = heterogeneity_p(h)
    return ("chao_mh" if p < alpha else "schnabel"), p


def estimate_all(h: np.ndarray) -> list[Estimate]:
    """Every estimator on one capture history."""
    return [f(h) for f in ESTIMATORS.values()]


__all__ = ["Estimate", "naive", "chapman", "schnabel", "chao_mh", "estimate_all", "ESTIMATORS", "heterogeneity_p",
           "choose_method"]
