"""Discovery with people in the loop: constraints, constrained grouping, answers (audit, undo, persistence),
questions, the adapter's fallback, the simulated reviewer and the `reid-hub discover` command."""
from __future__ import annotations

import json
import sqlite3

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score
from test_cli import run_cli

from reid_hub import create_model, save_pretrained
from reid_hub.discovery import AnswerLog, Constraints, Discovery, DiscoveryConfig, load_collection
from reid_hub.discovery.adapter import fit_adapter
from reid_hub.discovery.graph import build_graph
from reid_hub.discovery.grouping import constrained_average_linkage
from reid_hub.discovery.simulate import leave_one_out_top1, simulate_reviewer
from reid_hub.errors import ConfigError, DataError


def blobs(identities: int = 12, per: int = 10, dim: int = 32, spread: float = 0.35, modes: int = 1,
          seed: int = 0, view_spread: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Unit embeddings of `identities` animals; with `modes` > 1 each animal is seen in that many distinct views
    (so the grouping over-splits it, as a flank seen from two sides)."""
    rng = np.random.default_rng(seed)
    x, y = [], []
    for k in range(identities):
        centre = rng.normal(size=dim)
        views = [centre + rng.normal(size=dim) * view_spread for _ in range(modes)]
        for m in range(per):
            x.append(views[m % modes] + rng.normal(size=dim) * spread)
            y.append(f"id{k}")
    x = np.asarray(x, np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True), np.asarray(y)


def table_of(y: np.ndarray, species: str = "toy") -> pd.DataFrame:
    return pd.DataFrame({"path": [f"img{r}.jpg" for r in range(len(y))], "identity": y, "species": species})


def test_constraints_from_columns_and_their_closure():
    t = pd.DataFrame({"track": ["t1", "t1", "t1", "", "t2", "t2"], "frame": ["f1", "f2", "f3", "f1", "f9", "f1"]})
    c = Constraints.from_columns(t, "track", "frame")
    comp = c.components()
    assert comp[0] == comp[1] == comp[2] and comp[4] == comp[5] and comp[3] != comp[0] and comp[4] != comp[0]
    # frame f1 holds rows 0, 3 and 5: three different animals
    assert c.cannot == {(0, 3), (0, 5), (3, 5)}
    lifted = c.cannot_between(comp)
    assert (min(comp[0], comp[5]), max(comp[0], comp[5])) in lifted
    # a later answer overrides: same after different removes the cannot-link
    c.add_must(0, 3)
    assert (0, 3) not in c.cannot and c.components()[3] == comp[0]


def test_grouping_obeys_must_and_cannot_links():
    x, y = blobs(identities=4, per=25)
    g = build_graph(x)
    free = constrained_average_linkage(len(x), g.i, g.j, g.jaccard, 0.2)
    assert adjusted_rand_score(y, free) > 0.9
    a, b = 0, 25  # two animals: force them together, and split the first animal's own pair apart
    c = Constraints(len(x))
    c.add_must(a, b)
    c.add_cannot(1, 2)
    lab = constrained_average_linkage(len(x), g.i, g.j, g.jaccard, 0.2, c)
    assert lab[a] == lab[b] and lab[1] != lab[2]
    # deterministic, labels numbered by first row
    assert np.array_equal(lab, constrained_average_linkage(len(x), g.i, g.j, g.jaccard, 0.2, c))
    assert lab[0] == 0


def test_answers_regroup_at_once_undo_and_survive_reopening(tmp_path):
    x, y = blobs(identities=5, per=20, spread=0.3)
    t = table_of(y)
    d = Discovery(t, x, DiscoveryConfig(adapter=False), answers=AnswerLog(tmp_path / "a.sqlite"))
    before = d.labels.copy()
    other = int(np.nonzero(y != y[0])[0][0])
    assert before[0] != before[other]
    d.answer(0, other, "same", actor="alice")
    assert d.labels[0] == d.labels[other]
    same_row = int(np.nonzero((y == y[0]) & (np.arange(len(y)) > 0))[0][0])
    d.answer(0, same_row, "different", actor="bob")
    assert d.labels[0] != d.labels[same_row]
    # a new session on the same folder sees the same answers
    again = Discovery(t, x, DiscoveryConfig(adapter=False), answers=AnswerLog(tmp_path / "a.sqlite"))
    assert np.array_equal(again.labels, d.labels)
    d.undo(actor="bob")
    assert d.labels[0] == d.labels[same_row] and d.labels[0] == d.labels[other]
    rows = sqlite3.connect(tmp_path / "a.sqlite").execute("SELECT answer, actor FROM answers ORDER BY id").fetchall()
    assert rows == [("same", "alice"), ("different", "bob"), ("undo", "bob")]
    with pytest.raises(ConfigError):
        d.answer(0, 0, "same")
    with pytest.raises(ConfigError):
        d.answer(0, 1, "maybe")


def test_questions_are_never_implied_or_repeated(tmp_path):
    x, y = blobs(identities=6, per=20, modes=2)
    d = Discovery(table_of(y), x, DiscoveryConfig(adapter=False), answers=AnswerLog(tmp_path / "a.sqlite"))
    first = d.questions(5)
    assert len(first) == 5 and all(q.a != q.b for q in first)
    assert [q.gain for q in first] == sorted((q.gain for q in first), reverse=True)
    q = first[0]
    d.answer(q.a, q.b, "skip")
    asked = {(min(q2.a, q2.b), max(q2.a, q2.b)) for q2 in d.questions(200)}
    assert (min(q.a, q.b), max(q.a, q.b)) not in asked
    d.answer(q.a, q.b, "same")
    comp = d.constraints().components()
    assert all(comp[q2.a] != comp[q2.b] for q2 in d.questions(200))


def test_simulated_reviewer_improves_grouping_and_beats_random(tmp_path):
    x, y = blobs(identities=12, per=20, modes=2, seed=3, view_spread=1.2)
    runs = {}
    for strategy in ("gain", "random"):
        d = Discovery(table_of(y), x, DiscoveryConfig(adapter=False, strategy=strategy),
                      answers=AnswerLog(tmp_path / f"{strategy}.sqlite"))
        runs[strategy] = simulate_reviewer(d, y, answers=30, batch=10, progress=False)
    curve = runs["gain"]
    assert [c["answers"] for c in curve] == [0, 10, 20, 30]
    assert all(set(c) == {"answers", "actions", "images_shown", "seconds", "ari", "ami", "individuals",
                          "true_individuals", "top1_unasked"} for c in curve)
    assert [c["seconds"] for c in curve] == [0, 60, 120, 180]  # 3 s an action + 1.5 s for each of two images
    assert curve[0]["true_individuals"] == 12
    assert curve[-1]["ari"] > curve[0]["ari"] + 0.08
    assert curve[-1]["ari"] - curve[0]["ari"] > runs["random"][-1]["ari"] - runs["random"][0]["ari"]


def test_adapter_learns_a_nuisance_away_and_falls_back_on_noise():
    rng = np.random.default_rng(0)
    n, dim = 240, 24
    ident = rng.integers(0, 30, n)
    centres = rng.normal(size=(30, dim))
    # e.g. light and pose: shared across animals, stronger in the embedding than the animal itself
    nuisance = rng.normal(size=(n, 4)) @ rng.normal(size=(4, dim))
    x = centres[ident] * 0.5 + nuisance * 1.5 + rng.normal(size=(n, dim)) * 0.6
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    a, b = rng.integers(0, n, 3000), rng.integers(0, n, 3000)
    keep = a != b
    a, b = a[keep], b[keep]
    same = ident[a] == ident[b]
    pos = np.nonzero(same)[0]
    neg = np.nonzero(~same)[0][: 4 * len(pos)]
    sel = np.concatenate([pos, neg])
    ad = fit_adapter(x, a[sel], b[sel], same[sel], ident)
    assert ad.report["used"] and not ad.is_identity
    assert ad.report["check_top1_adapter"] > ad.report["check_top1_embedding"]
    z = ad(x)
    assert np.allclose(np.linalg.norm(z, axis=1), 1, atol=1e-5)
    assert leave_one_out_top1(z, ident.astype(str), np.arange(n)) > leave_one_out_top1(x, ident.astype(str),
                                                                                        np.arange(n)) + 0.1
    fake = rng.integers(0, 30, n)  # answers unrelated to the animals
    fallback = fit_adapter(x, a[sel], b[sel], fake[a[sel]] == fake[b[sel]], fake)
    assert fallback.is_identity and fallback.report["used"] is False
    assert np.array_equal(fallback(x), x)


def test_load_collection_reads_folders_and_tables_and_refuses_bad_ones(tmp_path, toy_data):
    folder = toy_data[0]
    t = load_collection(folder)  # a folder with metadata.csv: its rows in order
    meta = pd.read_csv(folder / "metadata.csv")
    assert t["path"].tolist() == meta["path"].tolist() and t["species"].iloc[0] == "toyfox"
    plain = load_collection(folder / "images")  # a plain folder of images
    assert len(plain) == len(meta) and (plain["species"] == "").all()
    (tmp_path / "nopath.csv").write_text("file,identity\na.jpg,x\n")
    with pytest.raises(DataError, match="no 'path' column"):
        load_collection(tmp_path / "nopath.csv")
    (tmp_path / "missing.csv").write_text("path\nnot_here.jpg\n")
    with pytest.raises(DataError, match="row 1"):
        load_collection(tmp_path / "missing.csv")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return save_pretrained(create_model("tiny-test"), tmp_path_factory.mktemp("model") / "tiny")


def test_discover_command_writes_outputs_and_curve(tmp_path, toy_data, tiny_model):
    out = tmp_path / "disc"
    r = run_cli("discover", toy_data[0] / "metadata.csv", "--out", out, "--model", tiny_model, "--answers", "10",
                "--answers-from", "identity", "--batch", "5")
    assert r.returncode == 0, r.stderr
    ind = pd.read_csv(out / "individuals.csv")
    meta = pd.read_csv(toy_data[0] / "metadata.csv")
    assert ind["path"].tolist() == meta["path"].tolist() and list(ind.columns) == ["path", "individual", "confidence"]
    assert ind["confidence"].between(0, 1).all()
    curve = json.loads((out / "curve.json").read_text())
    assert [c["answers"] for c in curve] == [0, 5, 10] and curve[0]["true_individuals"] == 6
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == len(meta) and summary["answers"]["same"] + summary["answers"]["different"] <= 10
    q = pd.read_csv(out / "questions.csv")
    assert list(q.columns[:3]) == ["question", "a", "b"]
    # a person answers from the CLI; the grouping follows
    a, b = int(q["a_row"].iloc[0]), int(q["b_row"].iloc[0])
    r = run_cli("questions", "answer", out, "different", "--a", a, "--b", b, "--actor", "carol")
    assert r.returncode == 0, r.stderr
    ind2 = pd.read_csv(out / "individuals.csv")
    assert ind2["individual"].iloc[a] != ind2["individual"].iloc[b]


def test_discover_command_refuses_bad_input_with_one_line(tmp_path, toy_data, tiny_model):
    r = run_cli("discover", toy_data[0], "--out", tmp_path / "o", "--model", tiny_model, "--answers", "5")
    assert r.returncode == 2 and "--answers-from" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("discover", toy_data[0], "--out", tmp_path / "o", "--model", tiny_model, "--track-column", "nope")
    assert r.returncode == 2 and "nope" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "t.csv").write_text("image\nx.jpg\n")
    r = run_cli("discover", tmp_path / "t.csv", "--out", tmp_path / "o", "--model", tiny_model)
    assert r.returncode == 3 and "path" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("questions", "list", tmp_path / "nowhere")
    assert r.returncode == 3 and "discover" in r.stderr


def test_discover_with_a_gallery_sends_every_individual_to_review(tmp_path, toy_data, tiny_model):
    from reid_hub import from_pretrained
    from reid_hub.gallery import open_gallery, review

    model = from_pretrained(str(tiny_model))
    g = open_gallery(tmp_path / "g", model)
    meta = pd.read_csv(toy_data[0] / "metadata.csv")
    known = meta[meta["identity"] == "id0"]
    iid = g.add_individual("Fox zero", species="toyfox")
    g.enroll(iid, model.embed([str(toy_data[0] / p) for p in known["path"]]))
    g.close()
    out = tmp_path / "disc"
    r = run_cli("discover", toy_data[0], "--out", out, "--model", tiny_model, "--gallery", tmp_path / "g",
                "--threshold", "0.9")  # the untrained model groups little at this threshold: several proposals
    assert r.returncode == 0, r.stderr
    groups = pd.read_csv(out / "individuals.csv")["individual"].nunique()
    sent = pd.read_csv(out / "gallery.csv")
    assert len(sent) == groups and (sent["status"] == "pending").all()  # auto-accept is off: nothing enrolled
    g = open_gallery(tmp_path / "g", model, create=False)
    items, total = review.pending(g, 0, 100)
    assert total == groups and {p.source.split("#")[1] for p in items} == set(sent["individual"])
    assert all(p.current and p.current["individual_id"] == iid for p in items)  # the one known fox is offered
    assert len(g) == len(known)
    g.close()
    # decisions taken in the review queue come back as answers: two groups confirmed as one fox are one group
    from reid_hub.discovery.run import open_discovery

    a, b = items[0], items[1]
    g = open_gallery(tmp_path / "g", model, create=False)
    review.decide(g, a.id, "confirm", iid, actor="erin")
    review.decide(g, b.id, "confirm", iid, actor="erin")
    g.close()
    members = pd.read_csv(out / "gallery_members.csv")
    rows_a = members[members["proposal"] == a.id]["path"].tolist()
    rows_b = members[members["proposal"] == b.id]["path"].tolist()
    d = open_discovery(out)
    lab = dict(zip(d.keys, d.labels))
    assert len({lab[k] for k in rows_a + rows_b}) == 1
    fed = [h for h in d.answers.history() if h.actor.startswith("review:")]
    assert fed and {h.answer for h in fed} == {"same"}
    assert len(open_discovery(out).answers.history()) == len(d.answers.history())  # feeding twice adds nothing
    g = open_gallery(tmp_path / "g", model, create=False)
    review.decide(g, b.id, "undo", actor="erin")
    g.close()
    d = open_discovery(out)  # the undone decision's answers are withdrawn; a's own rows stay one animal
    in_force = d.answers.current()
    assert all(in_force[(h.a, h.b)] == "skip" for h in fed if {h.a, h.b} & set(rows_b))
    assert all(in_force[tuple(sorted(p))] == "same" for p in zip(rows_a[:-1], rows_a[1:]))
    assert any(h.actor == "review:withdrawn" for h in d.answers.history())
    r = run_cli("discover", toy_data[0], "--out", tmp_path / "d2", "--model", tiny_model, "--gallery", tmp_path / "nope")
    assert r.returncode == 7 and "nope" in r.stderr and "Traceback" not in r.stderr  # GalleryError: no such gallery


def test_adapter_check_counts_a_match_with_an_unlinked_photo_of_the_same_animal_as_no_miss():
    """Only two photos of each animal are linked by answers; the others are unlinked photos of the same animals.
    The check looks for each held-out photo's partner among the held-out photos, so a well-separating embedding
    scores high (searching the whole collection found the unlinked photos first and read 0)."""
    x, y = blobs(identities=20, per=8, spread=0.1)
    ids = sorted(set(y.tolist()))
    comp = np.arange(len(y))  # every row alone ...
    a, b, same = [], [], []
    for k, name in enumerate(ids):
        r = np.nonzero(y == name)[0]
        comp[r[1]] = comp[r[0]]  # ... but the first two photos of each animal answered "same"
        a.append(r[0]); b.append(r[1]); same.append(True)
        other = np.nonzero(y == ids[(k + 1) % len(ids)])[0][0]
        a.append(r[0]); b.append(other); same.append(False)
    ad = fit_adapter(x, np.array(a), np.array(b), np.array(same), comp)
    assert ad.report["check_top1_embedding"] > 0.8
