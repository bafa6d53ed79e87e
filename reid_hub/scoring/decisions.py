"""The one decision policy: what to do with a ranked candidate list (a photo, a clip's cluster, a discovered group).

Three outcomes: `accept` the best candidate, call the animal `new`, or send it to a person (`review`). A policy is
fitted per species on the gallery's own individuals, leave-individual-out: every labelled query is seen twice, once
as it is (its individual is in the gallery: a *known* view) and once with its own individual removed (exactly what a
*new* animal sees). Two scores are learnt on those views from the candidate list's features (`candidate_features`):

- `p_new`: P(the animal is none of the candidates);
- `p_correct`: P(the best candidate is the animal).

Both are cross-fitted by individual (every individual's views are scored by a model that never saw it), and a decision
is taken automatically only above a threshold whose held-out precision is at least the target with a finite-sample
guarantee: at most three views of each individual are kept (photos of one animal are not independent evidence), mixed at the
gallery's assumed share of new animals (`mixture`), and the decisions a threshold takes on that sample are a binomial
draw, so a one-sided Clopper-Pearson bound on their precision holds;
thresholds fixed in advance are tested from strict to lenient and kept while they pass (fixed-sequence testing, as
Learn-then-Test does), so that choosing the threshold costs no extra error. A species with too few individuals or
views cannot pass the bound: it decides nothing alone, everything goes to a person.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

from ..errors import ConfigError
from .calibration import individual_folds

ACCEPT, REVIEW, NEW = "accept", "review", "new"

#: the features of a candidate list, in the order a policy's weights use them
FEATURES = ("logit_p1", "logit_p2", "global_top", "global_gap", "local_top")
#: a policy needs at least this many individuals (folds are by individual) and views of each kind
MIN_INDIVIDUALS = 5
MIN_VIEWS = 30
#: cross-fitting folds (by individual)
FOLDS = 5


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, float), 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def candidate_features(probability: Sequence[Optional[float]], global_score: Sequence[float],
                       local_score: Sequence[Optional[float]]) -> np.ndarray:
    """The features of one query's candidate individuals (each by its best image), best first by P(same): logit of
    the best and second P(same), the best's global score, the gap between the two best global scores of distinct
    individuals, and log(1 + the best's verified local score). Missing values (no calibration, no local features,
    a single candidate) take neutral values."""
    p = np.array([np.nan if v is None else v for v in probability], float)
    g = np.asarray(global_score, float)
    loc = np.array([np.nan if v is None else v for v in local_score], float)
    if len(g) == 0:
        return np.array([_logit(0.0), _logit(0.0), -1.0, 0.0, 0.0])
    p = np.where(np.isnan(p), 0.0, p)
    gs = np.sort(g)[::-1]
    return np.array([float(_logit(p[0])), float(_logit(p[1] if len(p) > 1 else 0.0)), float(g[0]),
                     float(gs[0] - gs[1]) if len(gs) > 1 else 1.0,
                     float(np.log1p(max(0.0, loc[0]))) if not np.isnan(loc[0]) else 0.0])


@dataclass
class Views:
    """Held-out situations for fitting a policy: per view its features (n, len(FEATURES)), whether the animal was
    new (its individual removed), whether the best candidate was the animal, and the query's individual (folds)."""

    features: np.ndarray
    is_new: np.ndarray
    correct: np.ndarray
    individual: np.ndarray

    def __len__(self) -> int:
        return len(self.is_new)


def _auc(score: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC of `score` for `positive` (ties count half)."""
    from scipy.stats import rankdata

    pos = np.asarray(positive, bool)
    n1, n0 = int(pos.sum()), int((~pos).sum())
    if not n1 or not n0:
        return float("nan")
    r = rankdata(score)
    return round(float((r[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)), 4)


def views_from_pairs(query: np.ndarray, candidate: np.ndarray, probability: np.ndarray, global_score: np.ndarray,
                     local_score: np.ndarray, labels: Sequence[Any]) -> Views:
    """The two views of every labelled query from its shortlisted pairs (query row, candidate row, P(same), global
    and local score): as it is (known), and with its own individual's candidates removed (new). Each candidate
    individual is represented by its pair of highest P(same), as identification ranks them."""
    labels = np.asarray(labels)
    order = np.lexsort((-np.asarray(probability, float), np.asarray(query)))
    feats, is_new, correct, who = [], [], [], []
    start = 0
    q_sorted = np.asarray(query)[order]
    while start < len(order):
        stop = start
        while stop < len(order) and q_sorted[stop] == q_sorted[start]:
            stop += 1
        rows = order[start:stop]
        q = int(q_sorted[start])
        seen: set = set()
        best = []
        for r in rows.tolist():
            lbl = labels[candidate[r]]
            if lbl not in seen:
                seen.add(lbl)
                best.append(r)
        best = np.asarray(best, dtype=np.int64)
        own = labels[candidate[best]] == labels[q]
        for new, keep in ((False, np.ones(len(best), bool)), (True, ~own)):
            if not keep.any():
                continue
            b = best[keep]
            feats.append(candidate_features(probability[b], global_score[b], local_score[b]))
            is_new.append(new)
            correct.append(bool(not new and own[0]))
            who.append(labels[q])
        start = stop
    return Views(np.asarray(feats, float).reshape(-1, len(FEATURES)), np.asarray(is_new, bool),
                 np.asarray(correct, bool), np.asarray(who))


#: the feature sets a score may use, smallest first: a larger one is kept only where it ranks clearly better on
#: held-out individuals (few individuals make a five-feature model worse than the best P alone; `_clearly_better`)
FEATURE_SETS = ((0,), (0, 1), (0, 1, 2, 3), (0, 1, 2, 3, 4))
#: how much better (held-out ROC AUC) a larger feature set must rank to be chosen
MIN_AUC_GAIN = 0.01


@dataclass
class Logistic:
    """A standardised logistic model on some of the FEATURES, as plain data (columns, coefficients, centre, scale)."""

    columns: tuple[int, ...]
    coef: np.ndarray
    intercept: float
    mean: np.ndarray
    scale: np.ndarray

    def __call__(self, x: np.ndarray) -> np.ndarray:
        z = ((np.atleast_2d(x)[:, list(self.columns)] - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, columns: Sequence[int] = tuple(range(len(FEATURES))),
            c: float = 1.0) -> "Logistic":
        from sklearn.linear_model import LogisticRegression

        cols = tuple(int(i) for i in columns)
        x = np.asarray(x, float)[:, list(cols)]
        mean, scale = x.mean(axis=0), x.std(axis=0)
        scale = np.where(scale > 1e-9, scale, 1.0)
        m = LogisticRegression(C=c, max_iter=1000).fit((x - mean) / scale, y.astype(int))
        return cls(cols, m.coef_[0].astype(float), float(m.intercept_[0]), mean, scale)

    def to_dict(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "features": [FEATURES[i] for i in self.columns],
                "coef": self.coef.tolist(), "intercept": self.intercept, "mean": self.mean.tolist(),
                "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Logistic":
        return cls(tuple(int(i) for i in d["columns"]), np.asarray(d["coef"], float), float(d["intercept"]),
                   np.asarray(d["mean"], float), np.asarray(d["scale"], float))


def _clearly_better(score: np.ndarray, than: np.ndarray, y: np.ndarray, group: np.ndarray, rounds: int = 200,
                    seed: int = 0) -> bool:
    """Whether `score` ranks `y` better than `than` by MIN_AUC_GAIN and in at least 95% of bootstrap resamples of
    the individuals (`group`): a gain seen on a few animals is noise."""
    if _auc(score, y) < _auc(than, y) + MIN_AUC_GAIN:
        return False
    rng = np.random.default_rng(seed)
    groups = np.unique(group)
    members = [np.flatnonzero(group == g) for g in groups]
    wins = 0
    for _ in range(rounds):
        rows = np.concatenate([members[i] for i in rng.integers(0, len(groups), len(groups))])
        a, b = _auc(score[rows], y[rows]), _auc(than[rows], y[rows])
        wins += bool(a == a and b == b and a > b)
    return wins >= 0.95 * rounds


def _cross_fitted(x: np.ndarray, y: np.ndarray, fold: np.ndarray, group: np.ndarray, sign: float
                  ) -> tuple[tuple[int, ...], np.ndarray, float]:
    """The feature set whose cross-fitted scores (each fold scored by a model that never saw its individuals) rank
    `y` best. The first feature alone is the baseline, judged by its own ranking (`sign` orients it: a monotone map
    of it ranks the same in every gallery); a larger set is chosen only when it is clearly better than the best so
    far (`_clearly_better`, resampling the individuals `group`). Returns it with its held-out scores and their AUC."""
    raw = sign * x[:, 0]
    best: Optional[tuple[tuple[int, ...], np.ndarray, np.ndarray]] = None
    for cols in FEATURE_SETS:
        out = np.empty(len(y))
        for f in np.unique(fold):
            tr, te = fold != f, fold == f
            yt = y[tr]
            out[te] = Logistic.fit(x[tr], yt, cols)(x[te]) if 0 < yt.sum() < len(yt) else yt.mean()
        ranked = raw if cols == FEATURE_SETS[0] else out
        if best is None or _clearly_better(ranked, best[2], y, group):
            best = (cols, out, ranked)
    assert best is not None
    return best[0], best[1], _auc(best[2], y)


def _cp_lower(k: int, n: int, alpha: float) -> float:
    """One-sided Clopper-Pearson lower bound on a binomial proportion (k of n)."""
    from scipy.stats import beta

    return 0.0 if k <= 0 or n <= 0 else float(beta.ppf(alpha, k, n - k + 1))


def mixture(is_new: np.ndarray, new_share: float, seed: int = 0) -> np.ndarray:
    """Rows of the held-out views forming a sample with `new_share` new animals: every view of the scarcer side
    kept, the other side subsampled (seeded), so that the sample's decisions are a binomial draw of the decisions
    the gallery will take when that share of its queries are new."""
    is_new = np.asarray(is_new, bool)
    new, known = np.flatnonzero(is_new), np.flatnonzero(~is_new)
    rng = np.random.default_rng(seed)
    if len(new) > new_share / (1 - new_share) * len(known):
        new = np.sort(rng.choice(new, size=int(round(len(known) * new_share / (1 - new_share))), replace=False))
    else:
        known = np.sort(rng.choice(known, size=int(round(len(new) * (1 - new_share) / new_share)), replace=False))
    return np.concatenate([known, new])


#: views of one individual kept for a precision bound (of each kind): photos of one animal are not independent
#: draws, so an animal photographed a hundred times must not count as a hundred pieces of evidence
MAX_VIEWS_PER_INDIVIDUAL = 3


def per_individual(individual: np.ndarray, is_new: np.ndarray, limit: int = MAX_VIEWS_PER_INDIVIDUAL,
                   seed: int = 0) -> np.ndarray:
    """Rows keeping at most `limit` known and `limit` new views of each individual (seeded)."""
    rng = np.random.default_rng(seed)
    keep = []
    for who in np.unique(individual):
        for kind in (False, True):
            rows = np.flatnonzero((individual == who) & (np.asarray(is_new, bool) == kind))
            keep.extend(rng.choice(rows, size=min(limit, len(rows)), replace=False).tolist())
    return np.sort(np.asarray(keep, dtype=np.int64))


def precision_bound(right: int, decided: int, alpha: float) -> tuple[float, float]:
    """Precision of `decided` decisions of which `right` were right: the estimate and its one-sided
    Clopper-Pearson lower bound at level `alpha`."""
    if decided <= 0:
        return 0.0, 0.0
    return right / decided, _cp_lower(right, decided, alpha)


@dataclass
class Rule:
    """One automatic decision: taken when its score is at least `threshold` (None: never), with its held-out
    precision (point and bound) and coverage (the share of its own population it decides)."""

    threshold: Optional[float] = None
    precision: Optional[float] = None
    precision_bound: Optional[float] = None
    coverage: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


#: thresholds a rule tries on its probability (P(best is right) for accept, P(new) for new), in this order, fixed in
#: advance: each is tested at the full error budget and the sequence stops at the first that fails (fixed-sequence
#: testing, as Learn-then-Test does), so the threshold kept carries the guarantee; a threshold that decides too few
#: held-out views to pass even without an error (`_can_pass`) is passed over: its test could not reject
SEQUENCE = (0.99, 0.98, 0.97, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5)


def _can_pass(decided: int, target: float, delta: float) -> bool:
    """Whether `decided` decisions, all right, would show precision `target` (Clopper-Pearson at `delta`)."""
    return decided > 0 and delta ** (1.0 / decided) >= target


def _choose(score: np.ndarray, mine: np.ndarray, right: np.ndarray, target: float, delta: float) -> Rule:
    """The most lenient threshold of SEQUENCE on `score` whose precision bound passes `target`, testing from the
    strictest and stopping at the first failure. `mine`: the views of the population the decision is for (coverage
    is a share of them); `right`: whether deciding a view is right."""
    n_in, n_out = int(mine.sum()), int((~mine).sum())
    if n_in < MIN_VIEWS or n_out < MIN_VIEWS:
        return Rule()
    kept = Rule()
    for t in SEQUENCE:
        d = score >= t
        if not _can_pass(int(d.sum()), target, delta):
            continue
        point, low = precision_bound(int((d & right).sum()), int(d.sum()), delta)
        if low < target:
            break
        kept = Rule(float(t), round(point, 4), round(low, 4), round(float((d & mine).sum() / n_in), 4))
    return kept


@dataclass
class PolicySettings:
    """What a gallery asks of automatic decisions: `precision` at least this (per species in `by_species`),
    guaranteed with probability 1 - `delta`, when a share `new_share` of the queries are animals not in it."""

    precision: float = 0.95
    by_species: dict = field(default_factory=dict)
    new_share: float = 0.3
    delta: float = 0.1

    def __post_init__(self) -> None:
        for v in [self.precision, *self.by_species.values()]:
            if not 0.5 <= float(v) < 1.0:
                raise ConfigError(f"a decision precision target is a share in [0.5, 1), got {v}")
        if not 0.0 < self.new_share < 1.0 or not 0.0 < self.delta < 1.0:
            raise ConfigError(f"new_share and delta are shares in (0, 1), got {self.new_share}, {self.delta}")

    def target(self, species: Optional[str]) -> float:
        return float(self.by_species.get(species or "", self.precision))


@dataclass
class Decision:
    """What the policy decided for one candidate list, with what it rests on."""

    decision: str
    p_new: Optional[float]
    p_correct: Optional[float]
    precision: Optional[float]
    coverage: dict[str, float]
    policy: dict[str, Any]


class DecisionPolicy:
    """P(new) and P(best is right) for candidate lists of one species, and the two automatic rules on them."""

    def __init__(self, new_model: Logistic, correct_model: Logistic, held_out: dict[str, np.ndarray],
                 report: Optional[dict[str, Any]] = None) -> None:
        self.new_model, self.correct_model, self.held_out = new_model, correct_model, held_out
        self.report = dict(report or {})
        self._rules: dict[tuple[float, float, float], tuple[Rule, Rule]] = {}

    @classmethod
    def fit(cls, views: Views, seed: int = 0) -> Optional["DecisionPolicy"]:
        """Fit on `views`, cross-fitted by individual; None when they are too few to tell."""
        inds = np.unique(views.individual)
        if len(inds) < MIN_INDIVIDUALS or views.is_new.sum() < MIN_VIEWS or (~views.is_new).sum() < MIN_VIEWS:
            return None
        if views.correct.all() or not views.correct.any():
            return None
        fold = individual_folds(views.individual, FOLDS, seed)
        x = views.features
        cols_new, s_new, auc_new = _cross_fitted(x, views.is_new, fold, views.individual, -1.0)
        cols_cor, s_cor, auc_cor = _cross_fitted(x, views.correct, fold, views.individual, 1.0)
        report = {"views": int(len(views)), "individuals": int(len(inds)), "new_views": int(views.is_new.sum()),
                  "known_top1": round(float(views.correct[~views.is_new].mean()), 4),
                  "auc_p_new": auc_new, "auc_best_p": _auc(-x[:, 0], views.is_new), "auc_p_correct": auc_cor,
                  "features_p_new": [FEATURES[i] for i in cols_new],
                  "features_p_correct": [FEATURES[i] for i in cols_cor]}
        who = np.unique(views.individual, return_inverse=True)[1]
        held = {"p_new": s_new.astype(np.float32), "p_correct": s_cor.astype(np.float32),
                "is_new": views.is_new.copy(), "correct": views.correct.copy(), "individual": who}
        return cls(Logistic.fit(x, views.is_new, cols_new), Logistic.fit(x, views.correct, cols_cor), held, report)

    def rules(self, target: float, new_share: float, delta: float) -> tuple[Rule, Rule]:
        """(accept rule, new rule) at a precision target, from the held-out scores."""
        key = (round(target, 6), round(new_share, 6), round(delta, 6))
        if key not in self._rules:
            h = self.held_out
            rows = per_individual(h["individual"], h["is_new"])
            rows = rows[mixture(h["is_new"][rows], new_share)]
            is_new = h["is_new"].astype(bool)[rows]
            acc = _choose(h["p_correct"][rows], ~is_new, h["correct"].astype(bool)[rows], target, delta)
            new = _choose(h["p_new"][rows], is_new, is_new, target, delta)
            self._rules[key] = (acc, new)
        return self._rules[key]

    def decide(self, features: np.ndarray, settings: PolicySettings, species: Optional[str],
               auto_accept: bool = True) -> Decision:
        """The decision for one candidate list's features. `accept` needs `auto_accept`; `new` and `accept` both
        need their rule's held-out precision to pass the species' target; otherwise `review`."""
        p_new = float(self.new_model(features)[0])
        p_cor = float(self.correct_model(features)[0])
        acc, new = self.rules(settings.target(species), settings.new_share, settings.delta)
        is_acc = acc.threshold is not None and p_cor >= acc.threshold
        is_new = new.threshold is not None and p_new >= new.threshold
        if is_acc and not is_new and auto_accept:
            decision, prec = ACCEPT, acc.precision
        elif is_new and not is_acc:
            decision, prec = NEW, new.precision
        else:
            decision, prec = REVIEW, None
        policy = {"target_precision": settings.target(species), "new_share": settings.new_share,
                  "accept": acc.to_dict(), "new": new.to_dict(), "auto_accept": auto_accept,
                  "suggestion": ACCEPT if is_acc and not is_new else (NEW if is_new and not is_acc else REVIEW),
                  **{k: v for k, v in self.report.items() if k.startswith("auc") or k == "known_top1"}}
        return Decision(decision, p_new, p_cor, prec, {"accept": acc.coverage, "new": new.coverage}, policy)

    def to_dict(self) -> dict[str, Any]:
        return {"new_model": self.new_model.to_dict(), "correct_model": self.correct_model.to_dict(),
                "held_out": {k: np.asarray(v).astype(float).round(4).tolist() for k, v in self.held_out.items()},
                "report": self.report}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DecisionPolicy":
        h = d["held_out"]
        held = {"p_new": np.asarray(h["p_new"], float), "p_correct": np.asarray(h["p_correct"], float),
                "is_new": np.asarray(h["is_new"], bool), "correct": np.asarray(h["correct"], bool),
                "individual": np.asarray(h["individual"], int)}
        return cls(Logistic.from_dict(d["new_model"]), Logistic.from_dict(d["correct_model"]), held, d.get("report"))


#: a clip's match is kept when at most this share of the clip's own impostor scores reach it (conformal p-value)
CLIP_ALPHA = 0.1


def clip_matches(score: np.ndarray, pairs: Sequence[tuple[int, int]], alpha: float = CLIP_ALPHA
                 ) -> list[tuple[bool, float]]:
    """For the one-to-one matches `pairs` (cluster row, individual column) of a clip's score matrix: whether
    each is kept, and its conformal p-value. The pairs the assignment did not make are known-different animals
    seen under this clip's own conditions (camera, light, crop): a match is kept when it is the best of its row
    and of its column and at most a share `alpha` of those impostor scores reach it. A clip of another camera
    shifts genuine and impostor scores alike, which a threshold fitted within videos cannot see (on the FS48
    fish, cross-camera matches score below within-camera impostors)."""
    score = np.asarray(score, float)
    made = set((int(a), int(b)) for a, b in pairs)
    mask = np.isfinite(score)
    for a, b in made:
        mask[a, b] = False
    imp = score[mask]
    out = []
    for a, b in pairs:
        v = score[a, b]
        if not np.isfinite(v) or not len(imp):
            out.append((False, 1.0))
            continue
        p = float(((imp >= v).sum() + 1) / (len(imp) + 1))
        best = v >= np.nanmax(np.where(np.isfinite(score[a]), score[a], -np.inf)) - 1e-9 and \
            v >= np.nanmax(np.where(np.isfinite(score[:, b]), score[:, b], -np.inf)) - 1e-9
        out.append((bool(best and p <= alpha), p))
    return out


def undecided(reason: str, p_new: Optional[float] = None) -> Decision:
    """A `review` decision where no policy applies (no calibration, too few individuals), saying why."""
    return Decision(REVIEW, p_new, None, None, {"accept": 0.0, "new": 0.0}, {"reason": reason})


__all__ = ["ACCEPT", "REVIEW", "NEW", "FEATURES", "FEATURE_SETS", "candidate_features", "Views", "views_from_pairs", "Logistic", "mixture", "per_individual", "MAX_VIEWS_PER_INDIVIDUAL", "precision_bound", "Rule",
           "PolicySettings", "Decision", "DecisionPolicy", "undecided", "clip_matches", "CLIP_ALPHA"]
