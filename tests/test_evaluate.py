import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from reid_hub.data import tables as rdata
from reid_hub.errors import DataError
from reid_hub.evaluation.metrics import auroc, open_set_metrics, retrieval_metrics
from reid_hub.evaluation.runner import calibrate_threshold, evaluate_model, sift_similarity, write_results
from reid_hub.models.model import create_model


def _brute_force_ap(sim, labels, i):
    order = [j for j in np.argsort(-sim[i], kind="stable") if j != i]
    hits = [labels[j] == labels[i] for j in order]
    precisions = [sum(hits[: k + 1]) / (k + 1) for k, h in enumerate(hits) if h]
    return sum(precisions) / len(precisions)


def test_retrieval_metrics_match_a_brute_force_computation():
    rng = np.random.default_rng(0)
    labels = np.array(list("aaabbbccd"))
    x = rng.normal(size=(len(labels), 4))
    sim = x @ x.T
    r = retrieval_metrics(sim, labels)
    queries = [i for i in range(len(labels)) if (labels == labels[i]).sum() >= 2]
    assert r.queries == len(queries) == 8
    assert r.mAP == pytest.approx(np.mean([_brute_force_ap(sim, labels, i) for i in queries]))
    s = sim.copy()
    np.fill_diagonal(s, -np.inf)
    top1 = np.mean([labels[int(np.argmax(s[i]))] == labels[i] for i in queries])
    assert r.top1 == pytest.approx(top1)
    assert r.top1 <= r.top5 <= 1.0 and all(np.diff(r.cmc) >= 0)


def test_perfect_similarity_scores_one_and_bad_input_is_refused():
    labels = np.array([0, 0, 1, 1, 2, 2])
    sim = (labels[:, None] == labels[None, :]).astype(float)
    r = retrieval_metrics(sim, labels)
    assert r.top1 == r.mAP == 1.0
    with pytest.raises(DataError):
        retrieval_metrics(sim[:3], labels)
    with pytest.raises(DataError):
        retrieval_metrics(np.eye(3), np.array([0, 1, 2]))


def test_auroc_agrees_with_sklearn():
    rng = np.random.default_rng(1)
    pos, neg = rng.normal(1, 1, 40), rng.normal(0, 1, 60)
    expected = roc_auc_score(np.r_[np.ones(40), np.zeros(60)], np.r_[pos, neg])
    assert auroc(pos, neg) == pytest.approx(expected)


def test_threshold_and_open_set_on_separable_scores():
    labels = np.repeat(np.arange(6), 3)
    same = labels[:, None] == labels[None, :]
    rng = np.random.default_rng(2)
    sim = np.where(same, 0.8 + 0.1 * rng.random(same.shape), 0.2 + 0.1 * rng.random(same.shape))
    thr = calibrate_threshold(sim, labels)
    assert 0.3 <= thr <= 0.8
    m = open_set_metrics(sim, labels, thr, new_fraction=0.5, seed=0)
    assert m["auroc"] == 1.0 and m["balanced_accuracy"] == 1.0 and m["new_identities"] == 3
    assert m["baks"] == 1.0 and m["baus"] == 1.0 and m["animalclef_score"] == 1.0
    wrong = open_set_metrics(sim, labels, threshold=0.95)
    assert wrong["known_accuracy"] == 0.0 and wrong["new_accuracy"] == 1.0
    # every known animal called new: BAKS 0, BAUS 1, and their geometric mean 0
    assert wrong["baks"] == 0.0 and wrong["baus"] == 1.0 and wrong["animalclef_score"] == 0.0


def test_sift_scores_the_same_animal_above_a_different_one(tmp_path):
    rng = np.random.default_rng(3)
    base = (rng.random((120, 160)) * 255).astype(np.uint8)
    base = np.asarray(Image.fromarray(base).resize((320, 240)))
    other = np.asarray(Image.fromarray((rng.random((120, 160)) * 255).astype(np.uint8)).resize((320, 240)))
    shifted = np.roll(base, (7, 11), axis=(0, 1))
    for name, arr in (("a", base), ("b", shifted), ("c", other)):
        Image.fromarray(arr).save(tmp_path / f"{name}.png")
    import pandas as pd
    df = pd.DataFrame({"image": [str(tmp_path / f"{n}.png") for n in "abc"], "bbox": [None] * 3})
    sim = sift_similarity(df)
    assert sim[0, 1] > 20 and sim[0, 1] > 5 * max(sim[0, 2], 1)


def test_evaluate_model_reports_every_species_and_method(toy_data, tmp_path):
    df = rdata.split_by_identity(rdata.load_sources(toy_data), 0.5, seed=0)
    model = create_model("tiny-test")
    res = evaluate_model(model, df, baselines=("sift",), seed=0)
    assert set(res["species"]) == {"toyfox", "toyowl"}
    for sp, entry in res["species"].items():
        assert {"model", "sift"} <= set(entry)
        assert 0 <= entry["model"]["top1"] <= 1 and "open_set" in entry["model"]
        assert entry["identities"] == len(res["split"][sp]["unseen_identities"])
        disc = entry["model"]["discovery"]
        assert {"ari", "ami", "individuals"} <= set(disc) and -1 <= disc["ari"] <= 1 and disc["individuals"] >= 1
    js, png = write_results(res, tmp_path / "r.json")
    assert js.is_file() and png.stat().st_size > 1000
    with pytest.raises(DataError):
        evaluate_model(model, df.drop(columns="split"))
