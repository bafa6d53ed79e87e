"""Review by individual: group questions, whole-group answers, the snapshot a later process answers from, the
number of animals with its interval, the simulated reviewer's cost model, and a CLI that answers without torch."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score
from test_discovery import blobs, table_of

from reid_hub.discovery import AnswerLog, Discovery, DiscoveryConfig, simulate_reviewer
from reid_hub.discovery.folder import open_answers
from reid_hub.discovery.review_feed import implied_answers
from reid_hub.discovery.state import GroupState
from reid_hub.errors import ConfigError, DataError


def _discovery(tmp_path, **kw):
    x, y = blobs(**{"identities": 8, "per": 12, "modes": 2, "seed": 3, "view_spread": 1.2, **kw})
    d = Discovery(table_of(y), x, DiscoveryConfig(), answers=AnswerLog(tmp_path / "answers.sqlite"))
    return d, y


def test_a_group_answer_is_one_action_that_settles_many_pairs_and_is_undone_whole(tmp_path):
    d, y = _discovery(tmp_path)
    q = next(q for q in d.group_questions(20) if len(q.rows) >= 3 and q.neighbours)
    assert len(q.rows) <= 12 and q.images_shown == len(q.rows) + len(q.neighbours)
    shown = list(q.rows)
    keep = [r for r in shown if y[r] == y[shown[0]]]
    out = [r for r in shown if y[r] != y[shown[0]]]
    beside = [rows[0] for _, rows, _ in q.neighbours]
    merge = [r for r in beside if y[r] == y[shown[0]]]
    apart = [r for r in beside if y[r] != y[shown[0]]]
    d.answer_group(shown, out, merge, "alice", apart)
    got = {(a, b): same for a, b, same in d.answered()}
    assert len(got) == len(keep) - 1 + len(out) + len(merge) + len(apart)  # one pair per image or neighbour judged
    labels = d.labels
    assert len({labels[r] for r in keep + merge}) == 1  # confirmed and merged: one individual now
    assert all(labels[r] != labels[keep[0]] for r in out + apart)
    kind = "group" if out and merge else "take_out" if out else "merge" if merge else "confirm"
    assert [a.kind for a in d.answers.actions()][-1] == kind
    d.undo("alice")
    assert d.answered() == [] and [a.kind for a in d.answers.actions()][-1] == "undo"


@pytest.mark.parametrize("bad", [
    dict(shown=[], out=[], merge=[]),  # nothing shown
    dict(shown=[0, 1], out=[0, 1], merge=[]),  # nothing kept as the animal
    dict(shown=[0, 1], out=[5], merge=[]),  # only images shown can be taken out
    dict(shown=[0, 1], out=[], merge=[1]),  # merge names a neighbour's image
    dict(shown=[0], out=[], merge=[]),  # one image, nothing judged: says nothing
    dict(shown=[0, 10_000], out=[], merge=[]),  # no such row
])
def test_bad_group_answers_are_typed_and_write_nothing(tmp_path, bad):
    d, _ = _discovery(tmp_path)
    with pytest.raises(ConfigError):
        d.answer_group(bad["shown"], bad["out"], bad["merge"], "alice")
    assert d.answers.actions() == []


def test_snapshot_round_trip_answers_like_the_whole_discovery(tmp_path):
    d, y = _discovery(tmp_path)
    d.write(tmp_path)
    light = GroupState.load(tmp_path / "snapshot.npz", AnswerLog(tmp_path / "answers.sqlite"))
    assert (light.labels == d.labels).all() and light.keys == d.keys
    q = d.questions(1)[0]
    d.answer(q.a, q.b, "different", "bob")
    assert (light.regroup() == d.regroup()).all()  # the same answers give the same groups either way
    (tmp_path / "broken.npz").write_bytes(b"not a snapshot")
    with pytest.raises(DataError):
        GroupState.load(tmp_path / "broken.npz")


def test_number_of_animals_has_an_interval_that_narrows_with_answers(tmp_path):
    d, y = _discovery(tmp_path)
    a0 = d.animals()
    assert a0["lower"] <= a0["estimate"] <= a0["upper"] and a0["groups"] == d.labels.max() + 1
    simulate_reviewer(d, y, 20, 5, progress=False, review="group")
    a1 = d.animals()
    assert a1["upper"] - a1["lower"] < a0["upper"] - a0["lower"]
    assert abs(a1["groups"] - 8) < abs(a0["groups"] - 8)  # closer to the 8 animals after review


def test_simulated_group_review_counts_actions_images_and_seconds(tmp_path):
    d, y = _discovery(tmp_path)
    start = adjusted_rand_score(y, d.labels)
    curve = simulate_reviewer(d, y, 10, 5, progress=False, review="group")
    last = curve[-1]
    assert [c["actions"] for c in curve] == [0, 5, 10]
    assert last["seconds"] == pytest.approx(3.0 * last["actions"] + 1.5 * last["images_shown"])
    assert last["images_shown"] > 2 * last["actions"]  # a group shows more than a pair does
    assert last["ari"] > start + 0.05
    with pytest.raises(ConfigError):
        simulate_reviewer(d, y, 5, 5, progress=False, review="triples")


def test_held_out_identities_are_never_asked_about(tmp_path):
    d, y = _discovery(tmp_path)
    curve = simulate_reviewer(d, y, 20, 5, progress=False, held_out=0.3)
    asked = {y[r] for a, b, _ in d.answered() for r in (a, b)}
    from reid_hub.discovery.simulate import held_out_identities

    hidden = held_out_identities(np.array(y), 0.3)
    assert len(hidden) == round(0.3 * 8) and not asked & hidden
    assert curve[-1]["top1_held_out"] is not None and curve[-1]["top1_held_out_embedding"] is not None


def test_take_outs_in_a_gallery_review_come_back_as_answers():
    members = {1: ["a", "b", "c", "d"], 2: ["e", "f"]}
    got = implied_answers({1: "ind-1", 2: None}, {}, members, {1: ["c"]})
    assert got[("a", "c")] == "different"  # taken out: not the animal of the images kept
    assert got[("a", "b")] == "same" and got[("b", "d")] == "same"  # the chain skips the image taken out
    assert not any("c" in pair and v == "same" for pair, v in got.items())


def test_questions_cli_answers_from_the_snapshot_without_torch(tmp_path):
    d, _ = _discovery(tmp_path)
    (tmp_path / "state.json").write_text(json.dumps({"table": "unused", "gallery": None}))
    d.write(tmp_path)
    q = d.group_questions(1)[0]
    code = ("import sys; sys.argv = ['reid-hub', 'questions', 'answer', sys.argv[1], 'confirm', '--rows', "
            "sys.argv[2]]; from reid_hub.cli import main; rc = main(sys.argv[1:]); "
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH'); sys.exit(rc)")
    rows = ",".join(map(str, q.rows[:2]))
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path), rows], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "NO-TORCH" in r.stdout and "individuals" in r.stdout
    assert open_answers(tmp_path).answers.actions()[-1].kind == "confirm"
    listed = subprocess.run([sys.executable, "-m", "reid_hub.cli", "questions", "list", str(tmp_path), "--limit", "2"],
                            capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0 and "columns:" in listed.stdout and "gain:" in listed.stdout
