"""The one decision policy: P(new), automatic decisions only at a stated precision, and the clip rule."""
import numpy as np
import pytest

from reid_hub.errors import ConfigError
from reid_hub.scoring.decisions import (ACCEPT, NEW, REVIEW, DecisionPolicy, PolicySettings, Views, clip_matches,
                                        mixture, precision_bound)


def simulate(individuals, per, separation, rng):
    """Views as recalibration makes them: each query seen as known (its animal among the candidates: first 85% of
    the time, else second) and as new (its animal removed); `separation`: how far its own animal scores above
    others."""
    feats, is_new, correct, who = [], [], [], []
    for i in range(individuals):
        for _ in range(per):
            right = rng.random() < 0.85
            own = separation + rng.normal()
            p1, p2 = (own, rng.normal() - 1) if right else (max(own, rng.normal()) + 0.1, own)
            feats.append([p1, p2, 0.5 + 0.1 * p1, 0.1 * (p1 - p2), 2 + p1])
            is_new.append(False), correct.append(right), who.append(i)
            p1n = rng.normal()
            p2n = min(p1n, rng.normal()) - 1
            feats.append([p1n, p2n, 0.5 + 0.1 * p1n, 0.1 * (p1n - p2n), 2 + p1n])
            is_new.append(True), correct.append(False), who.append(i)
    return Views(np.array(feats), np.array(is_new), np.array(correct), np.array(who))


def realised_precision(policy, settings, views, new_share, rng):
    """Precision of the automatic decisions on a fresh draw mixed at `new_share` new animals."""
    rows = mixture(views.is_new, new_share, seed=int(rng.integers(1 << 30)))
    got = {ACCEPT: [], NEW: []}
    for r in rows:
        d = policy.decide(views.features[r], settings, "zebra").decision
        if d == ACCEPT:
            got[ACCEPT].append(bool(views.correct[r]))
        elif d == NEW:
            got[NEW].append(bool(views.is_new[r]))
    return {k: (np.mean(v) if v else None, len(v)) for k, v in got.items()}


def test_a_separable_species_decides_alone_at_the_stated_precision():
    rng = np.random.default_rng(0)
    policy = DecisionPolicy.fit(simulate(60, 6, 4.0, rng))
    settings = PolicySettings(precision=0.95)
    acc, new = policy.rules(0.95, 0.3, 0.1)
    assert acc.threshold is not None and new.threshold is not None
    assert acc.precision_bound >= 0.95 and new.precision_bound >= 0.95 and acc.coverage > 0.4
    assert policy.report["auc_p_new"] > 0.9
    fresh = realised_precision(policy, settings, simulate(200, 6, 4.0, rng), 0.3, rng)
    for decision, (precision, n) in fresh.items():
        assert n > 100 and precision >= 0.95, (decision, precision, n)
    # a stricter target decides less, never more
    strict_acc, strict_new = policy.rules(0.99, 0.3, 0.1)
    assert strict_acc.coverage <= acc.coverage and strict_new.coverage <= new.coverage


def test_a_species_that_does_not_separate_decides_nothing():
    rng = np.random.default_rng(1)
    policy = DecisionPolicy.fit(simulate(40, 5, 0.3, rng))
    acc, new = policy.rules(0.95, 0.3, 0.1)
    assert acc.threshold is None and new.threshold is None
    d = policy.decide(np.array([5.0, -3.0, 1.0, 0.5, 7.0]), PolicySettings(), "zebra")
    assert d.decision == REVIEW and d.precision is None and 0.0 <= d.p_new <= 1.0


def test_too_few_individuals_give_no_policy_and_the_policy_round_trips():
    rng = np.random.default_rng(2)
    assert DecisionPolicy.fit(simulate(4, 20, 4.0, rng)) is None
    policy = DecisionPolicy.fit(simulate(30, 6, 4.0, rng))
    again = DecisionPolicy.from_dict(policy.to_dict())
    x = np.array([3.0, -1.0, 0.8, 0.3, 5.0])
    s = PolicySettings()
    assert again.decide(x, s, "a").decision == policy.decide(x, s, "a").decision
    assert again.decide(x, s, "a").p_new == pytest.approx(policy.decide(x, s, "a").p_new, abs=1e-6)


def test_accept_needs_auto_accept_and_settings_are_validated():
    rng = np.random.default_rng(3)
    policy = DecisionPolicy.fit(simulate(60, 6, 4.0, rng))
    x = np.array([9.0, -4.0, 1.4, 0.9, 11.0])  # far on the known side
    assert policy.decide(x, PolicySettings(), "z").decision == ACCEPT
    off = policy.decide(x, PolicySettings(), "z", auto_accept=False)
    assert off.decision == REVIEW and off.policy["suggestion"] == ACCEPT
    with pytest.raises(ConfigError):
        PolicySettings(precision=1.2)
    with pytest.raises(ConfigError):
        PolicySettings(new_share=0.0)


def test_precision_bound_and_mixture():
    point, low = precision_bound(100, 100, 0.005)
    assert point == 1.0 and 0.94 < low < 0.96  # 0.005 ** (1 / 100)
    assert precision_bound(0, 0, 0.05) == (0.0, 0.0)
    is_new = np.array([False] * 70 + [True] * 100)
    rows = mixture(is_new, 0.3)
    assert (~is_new[rows]).sum() == 70 and is_new[rows].sum() == 30


def test_clip_rule_keeps_a_match_above_the_clips_own_impostors():
    # another camera: every score is lower than within a video, the genuine ones still stand out
    s = np.full((5, 5), 0.55) + np.random.default_rng(0).normal(0, 0.02, (5, 5))
    np.fill_diagonal(s, 0.7)
    pairs = [(i, i) for i in range(5)]
    assert all(keep for keep, _ in clip_matches(s, pairs))
    s[4, 4] = 0.56  # an animal the gallery does not hold: its match is no better than the impostors
    got = clip_matches(s, pairs)
    assert [keep for keep, _ in got] == [True, True, True, True, False] and got[4][1] > 0.1
