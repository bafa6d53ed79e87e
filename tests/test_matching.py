"""Local matchers, score calibration and fusion: behaviour on generated coat patterns and reference math."""
import numpy as np
import pytest

from reid_hub.errors import ConfigError, DataError
from reid_hub.scoring.calibration import ScoreCalibrator, expected_calibration_error
from reid_hub.scoring.fusion import CalibrationSet, FusionCalibration, fit_fusion, shortlist
from reid_hub.scoring.ranker import labelled_pairs
from reid_hub.scoring.matchers import LocalFeatures, create_matcher, draw_matches
from reid_hub.scoring.matchers.base import mutual_nearest, ratio_test

from coats import coat, photo


def _separation(name):
    m = create_matcher(name)
    a, b = coat(1), coat(2)
    fa = m.extract(photo(a, 10))
    same = m.match(fa, m.extract(photo(a, 11)))
    other = m.match(fa, m.extract(photo(b, 12)))
    return same, other


@pytest.mark.parametrize("name", ["sift", "xfeat", "aliked-lightglue"])
def test_matcher_verifies_the_same_animal_and_not_another(name):
    pytest.importorskip("kornia") if name != "sift" else None
    same, other = _separation(name)
    assert same.inliers.sum() >= 15, same.score
    assert same.score > 3 * other.score + 5
    assert len(same.idx0) == len(same.idx1) == len(same.inliers)


def test_keypoints_are_in_the_pixels_of_the_given_image():
    m = create_matcher("sift", max_side=120)
    img = photo(coat(3, size=(480, 360)), 1)
    f = m.extract(img)
    assert f.image_size == img.size
    assert f.keypoints[:, 0].max() > 200  # mapped back from the 120-px working copy
    assert (f.keypoints >= -1).all() and (f.keypoints[:, 0] <= img.width + 1).all()


def test_local_features_round_trip_and_corrupt_blob():
    f = create_matcher("sift").extract(coat(4))
    g = LocalFeatures.from_bytes(f.to_bytes())
    assert g.image_size == f.image_size and np.allclose(g.keypoints, f.keypoints)
    assert np.allclose(g.descriptors, f.descriptors, rtol=1e-2, atol=0.5)  # float16 storage
    with pytest.raises(DataError):
        LocalFeatures.from_bytes(b"not features")


def test_unknown_matcher_and_bad_input_are_typed_errors():
    with pytest.raises(ConfigError):
        create_matcher("orb")
    with pytest.raises(DataError):
        create_matcher("sift").extract(np.zeros((10, 10)))


def test_featureless_image_matches_nothing():
    from PIL import Image

    m = create_matcher("sift")
    flat = m.extract(Image.new("RGB", (100, 80), (120, 120, 120)))
    assert len(flat) == 0
    assert m.match(flat, m.extract(coat(5))).score == 0


def test_ratio_test_and_mutual_nearest_match_brute_force():
    rng = np.random.default_rng(0)
    d0, d1 = rng.normal(size=(30, 8)), rng.normal(size=(40, 8))
    i0, i1 = ratio_test(d0, d1, 0.8)
    dist = np.linalg.norm(d0[:, None] - d1[None], axis=2)
    order = np.argsort(dist, axis=1)
    ref = [i for i in range(30) if dist[i, order[i, 0]] < 0.8 * dist[i, order[i, 1]]]
    assert i0.tolist() == ref and i1.tolist() == [int(order[i, 0]) for i in ref]
    u0, u1 = d0 / np.linalg.norm(d0, axis=1, keepdims=True), d1 / np.linalg.norm(d1, axis=1, keepdims=True)
    a, b = mutual_nearest(u0, u1)
    sim = u0 @ u1.T
    ref = [(i, int(sim[i].argmax())) for i in range(30) if int(sim[:, sim[i].argmax()].argmax()) == i]
    assert list(zip(a.tolist(), b.tolist())) == ref


def test_evidence_picture_draws_side_by_side():
    m = create_matcher("sift")
    a, b = photo(coat(6), 1), photo(coat(6), 2)
    fa, fb = m.extract(a), m.extract(b)
    pic = draw_matches(a, b, fa, fb, m.match(fa, fb), height=200, caption="x")
    assert pic.height == 222 and pic.width > 300
    px = np.asarray(pic)
    assert ((px[..., 1] > 180) & (px[..., 0] < 80)).sum() > 50  # green inlier lines are drawn


def test_ece_reference_values():
    assert expected_calibration_error([0.9] * 10, [1] * 9 + [0]) == pytest.approx(0.0)
    assert expected_calibration_error([0.9] * 10, [1] * 5 + [0] * 5) == pytest.approx(0.4)
    # two bins: half the pairs at 0.15 (true 0.0) and half at 0.85 (true 1.0)
    assert expected_calibration_error([0.15, 0.15, 0.85, 0.85], [0, 0, 1, 1]) == pytest.approx(0.15)


def test_isotonic_and_logistic_calibration_are_monotone_and_calibrated():
    rng = np.random.default_rng(0)
    same = rng.random(4000) < 0.3
    score = np.where(same, rng.normal(2, 1, 4000), rng.normal(0, 1, 4000))
    for kind in ("isotonic", "logistic"):
        cal = ScoreCalibrator.fit(score[:2000], same[:2000], kind)
        p = cal(np.sort(score))
        assert np.all(np.diff(p) >= -1e-12) and p.min() >= 0 and p.max() <= 1
        assert expected_calibration_error(cal(score[2000:]), same[2000:]) < 0.05
        back = ScoreCalibrator.from_dict(cal.to_dict())
        assert np.allclose(back(score[:50]), cal(score[:50]))
    # the logistic fit agrees with the true posterior of two unit-variance Gaussians (slope 2, prior 0.3)
    lg = ScoreCalibrator.fit(score, same, "logistic")
    assert lg.coef[0] == pytest.approx(2.0, rel=0.15)
    with pytest.raises(DataError):
        ScoreCalibrator.fit([0.1, 0.2], [True, True])


def test_shortlist_skips_self_and_own_group():
    sim = np.array([[1, .9, .8, .1], [.9, 1, .2, .3], [.8, .2, 1, .7], [.1, .3, .7, 1]])
    assert shortlist(sim, 2).tolist() == [[1, 2], [0, 3], [0, 3], [2, 1]]
    assert shortlist(sim, 3, groups=["a", "a", "b", "b"]).tolist() == [[2, 3, -1], [3, 2, -1], [0, 1, -1], [1, 0, -1]]


def _synthetic_pairs(local_informative: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(40), 4)
    centres = rng.normal(size=(40, 16))
    emb = centres[labels] + rng.normal(0, 1.2, (160, 16))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)

    def local(qi, ci):
        same = labels[qi] == labels[ci]
        base = np.where(same, 25.0, 4.0) if local_informative else np.full(len(qi), 10.0)
        return base + rng.normal(0, 3, len(qi))

    return labelled_pairs(emb @ emb.T, labels, local, depth=10), labels


def test_fusion_learns_to_trust_an_informative_matcher_and_ignore_a_blind_one():
    pairs, labels = _synthetic_pairs(True)
    good = fit_fusion(pairs, labels)
    assert good.weights[1] > good.weights[0] * 0.5
    p = good.probabilities(pairs["global"], pairs["local"])
    assert expected_calibration_error(p["fused"], pairs["same"]) < 0.05
    def top(s):
        return np.mean([pairs["same"][pairs["query"] == q][np.argmax(s[pairs["query"] == q])]
                        for q in np.unique(pairs["query"])])
    assert top(p["fused"]) > top(pairs["global"]) + 0.1
    pairs, labels_b = _synthetic_pairs(False, seed=1)
    blind = fit_fusion(pairs, labels_b)
    pb = blind.probabilities(pairs["global"], pairs["local"])
    assert top(pb["fused"]) >= top(pairs["global"]) - 0.03  # a blind matcher does not drag the ranking down
    assert 0 < good.new_threshold < 1
    back = CalibrationSet.from_dict(CalibrationSet({"*": good, "lion": blind}).to_dict())
    assert isinstance(back.for_species("zebra"), FusionCalibration)
    assert back.for_species("lion").weights == pytest.approx(blind.weights)
    with pytest.raises(DataError):
        CalibrationSet({"lion": blind}).for_species("zebra")


@pytest.mark.parametrize("name", ["sift", "xfeat"])
def test_thin_crops_are_enlarged_not_refused(name):
    pytest.importorskip("kornia") if name != "sift" else None
    from PIL import Image

    m = create_matcher(name)
    thin = photo(coat(8), 1).resize((200, 24))  # a fish-like crop: 24 px high
    f = m.extract(thin)
    assert f.image_size == (200, 24) and (f.keypoints[:, 1] <= 25).all()
    assert m.match(f, f).score >= 0
    assert len(m.extract(Image.new("RGB", (5, 3)))) >= 0
