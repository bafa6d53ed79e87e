"""Human review: proposals, decisions in one transaction with an audit row, idempotent retries, conflicts."""
import threading

import numpy as np
import pytest

from reid_hub.errors import ConflictError, DataError, GalleryError
from reid_hub.gallery import Gallery, review
from reid_hub.gallery.recalibration import recalibrate

from coats import coat, photo

D = 16


def unit(x):
    x = np.asarray(x, np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _coat_gallery(folder, species, individuals, per, seed, coat_base):
    """A recalibrated gallery of coat-pattern animals with noisy embeddings around one centre each."""
    rng = np.random.default_rng(seed)
    g = Gallery(folder, "m", "fp", D)
    centres = unit(rng.normal(size=(individuals, D)))
    ids = []
    for k in range(individuals):
        iid = g.add_individual(f"{species} {k}", species=species)
        g.enroll(iid, unit(centres[k] + 0.3 * rng.normal(size=(per, D)) / np.sqrt(D)),
                 images=[photo(coat(coat_base + k), j) for j in range(per)])
        ids.append(iid)
    recalibrate(g)
    return g, ids, centres, rng


@pytest.fixture()
def gallery(tmp_path):
    g, ids, centres, rng = _coat_gallery(tmp_path / "g", "okapi", 6, 3, 0, 500)
    g._test = (ids, centres, rng)
    return g


def _query(g, k, seed=0, n=2):
    ids, centres, rng = g._test
    return unit(centres[k] + 0.3 * rng.normal(size=(n, D)) / np.sqrt(D)), [photo(coat(500 + k), 40 + seed + j)
                                                                          for j in range(n)]


def test_review_everything_then_confirm_enrolls_once_with_an_audit_row(gallery):
    g = gallery
    ids = g._test[0]
    g.update_settings(auto_accept=False)
    before = len(g)
    e, imgs = _query(g, 2)
    out = review.propose(g, e, imgs[0], species="okapi", source="clip1#0", video="clip1", images=imgs)
    assert out["status"] == "pending"
    p = review.get(g, out["proposal_id"])
    assert p.current["individual_id"] == ids[2] and p.n == 2 and len(g) == before
    done = review.decide(g, p.id, "confirm", actor="alice")
    assert done["status"] == "confirmed" and done["outcome"]["individual_id"] == ids[2] and len(g) == before + 2
    again = review.decide(g, p.id, "confirm", actor="alice")  # a retried decision changes nothing
    assert again["outcome"] == done["outcome"] and len(g) == before + 2
    with pytest.raises(ConflictError):
        review.decide(g, p.id, "new", display_name="someone else")
    log = review.audit_log(g, p.id)
    assert [r["action"] for r in log] == ["confirm"] and log[0]["actor"] == "alice"
    assert log[0]["previous"]["status"] == "pending"
    # the enrolled crops carry local features, so they are verified like any enrolled image
    new_ids = done["outcome"]["image_ids"]
    assert g.db.execute(f"SELECT COUNT(*) FROM local_features WHERE image_id IN ({','.join(map(str, new_ids))})"
                        ).fetchone()[0] == 2


def test_reject_shows_next_candidate_then_new_individual_and_undo(gallery):
    g = gallery
    g.update_settings(auto_accept=False)
    rng = np.random.default_rng(5)
    e = unit(rng.normal(size=(1, D)))
    out = review.propose(g, e, photo(coat(999), 1), species="okapi", source="upload")
    p = review.get(g, out["proposal_id"])
    first = p.current["individual_id"]
    after = review.decide(g, p.id, "reject")
    assert after["current"]["individual_id"] != first and first in after["rejected"]
    with pytest.raises(ConflictError):
        review.decide(g, p.id, "new", display_name="okapi 0")  # names are unique within a species
    n_ind = len(g.individuals())
    made = review.decide(g, p.id, "new", display_name="Stranger")
    assert made["status"] == "new" and len(g.individuals()) == n_ind + 1
    undone = review.decide(g, p.id, "undo", actor="bob")
    assert undone["status"] == "pending" and len(g.individuals()) == n_ind
    assert [r["action"] for r in review.audit_log(g, p.id)] == ["undo", "new", "reject"]
    forced = review.decide(g, p.id, "new", display_name="okapi 0", force=True)
    assert forced["status"] == "new"
    pairs = review.decided_pairs(g)
    assert any(not q["same"] and q["individual_id"] == first for q in pairs)


def test_auto_accept_needs_a_well_supported_calibration(tmp_path, gallery):
    # the small fixture gallery cannot show its precision on held-out animals: even a clear match goes to review
    e, imgs = _query(gallery, 4, n=1)
    assert review.propose(gallery, e, imgs[0], species="okapi", images=imgs)["status"] == "pending"
    g, ids, centres, rng = _coat_gallery(tmp_path / "big", "zebra", 50, 4, 1, 700)
    g.update_settings(auto_accept=True)  # opt-in: by default a person decides everything
    before = len(g)
    out = review.propose(g, unit(centres[[6]] + 0.1 * rng.normal(size=(1, D)) / np.sqrt(D)),
                         photo(coat(706), 99), species="zebra", images=[photo(coat(706), 99)])
    assert out["status"] == "auto-accepted" and out["individual_id"] == ids[6] and len(g) == before + 1
    assert review.audit_log(g, out["proposal_id"])[0]["action"] == "auto-accept"
    g.update_settings(auto_accept=False)  # review everything, as Wildbook users expect
    out = review.propose(g, unit(centres[[6]]), photo(coat(706), 98), species="zebra")
    assert out["status"] == "pending" and out["decision"] == "review"


def test_bad_decisions_are_typed(gallery):
    g = gallery
    pid = _pending(g, 1)
    with pytest.raises(GalleryError):
        review.decide(g, 12345, "confirm")
    with pytest.raises(DataError):
        review.decide(g, pid, "new", display_name="  ")
    with pytest.raises(ConflictError):
        review.decide(g, pid, "undo")
    g.delete_individual(g._test[0][1])
    with pytest.raises(GalleryError):
        review.decide(g, pid, "confirm", individual_id=g._test[0][1])
    with pytest.raises(ConflictError):
        review.decide(g, pid, "reject", expected_version=99)


def _pending(g, k):
    """A pending proposal for individual k's new photos in a gallery that reviews everything."""
    g.update_settings(auto_accept=False)
    e, imgs = _query(g, k)
    return review.propose(g, e, imgs[0], species="okapi", images=imgs)["proposal_id"]


def test_concurrent_decisions_one_wins(tmp_path, gallery):
    g = gallery
    pid = _pending(g, 3)
    before = len(g)
    results = []

    def worker(action, name):
        other = Gallery(g.folder, "m", "fp", D, create=False)  # a second connection, as a second server would
        try:
            results.append(review.decide(other, pid, action, display_name=name)["status"])
        except ConflictError:
            results.append("conflict")

    ts = [threading.Thread(target=worker, args=("confirm", None)), threading.Thread(target=worker, args=("new", "X"))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sorted(results).count("conflict") == 1
    g2 = Gallery(g.folder, "m", "fp", D, create=False)
    assert len(g2) == before + 2  # exactly one enrollment


def test_camtrap_dp_export_validates_and_names_individuals(gallery, tmp_path):
    import zipfile

    from reid_hub.gallery.camtrap import SCHEMAS, export_camtrap_dp, export_sightings_csv

    g = gallery
    out = export_camtrap_dp(g, tmp_path / "pkg.zip")
    with zipfile.ZipFile(out) as z:
        names = set(z.namelist())
        z.extractall(tmp_path / "pkg")
    assert names == {"datapackage.json", "deployments.csv", "media.csv", "observations.csv"}
    import pandas as pd

    obs = pd.read_csv(tmp_path / "pkg" / "observations.csv")
    media = pd.read_csv(tmp_path / "pkg" / "media.csv")
    assert len(obs) == len(g) == len(media)
    assert set(obs["individualID"]) == {i["id"] for i in g.individuals()}
    assert set(obs["mediaID"]) == set(media["mediaID"]) and (obs["scientificName"] == "okapi").all()
    frictionless = pytest.importorskip("frictionless")
    for name, schema in SCHEMAS.items():  # the official schemas are URLs; validated here against their fields
        report = frictionless.validate(frictionless.Resource(path=f"{name}.csv", basepath=str(tmp_path / "pkg"),
                                                             schema=frictionless.Schema.from_descriptor(schema)))
        assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])[:5]
    sightings = export_sightings_csv(g, tmp_path / "s.csv")
    assert sightings.read_text().startswith("individual_id,display_name")


def test_review_cli_lists_and_decides(gallery, tmp_path):
    import json as _json
    import subprocess
    import sys

    g = gallery
    pid = _pending(g, 0)
    def run(*a):
        return subprocess.run([sys.executable, "-m", "reid_hub.cli", "review", *a, "--gallery", str(g.folder)],
                              capture_output=True, text=True, timeout=120)
    out = run("list")
    assert out.returncode == 0 and f"#{pid}" in out.stdout
    out = run("confirm", "--id", str(pid), "--actor", "carol")
    assert out.returncode == 0 and _json.loads(out.stdout)["status"] == "confirmed"
    out = run("new", "--id", str(pid), "--name", "Other")
    assert out.returncode == 8 and "error" in out.stderr.lower()
    out = run("export-pairs", "--out", str(tmp_path / "pairs.csv"))
    assert out.returncode == 0 and (tmp_path / "pairs.csv").read_text().count("\n") >= 2
    assert run("show", "--id", "999").returncode == 7


def test_merge_and_split_are_audited(gallery):
    g = gallery
    ids = g._test[0]
    g.merge(ids[0], ids[1], actor="dana")
    moved = [r[0] for r in g.db.execute("SELECT id FROM images WHERE individual_id=?", (ids[0],))]
    new = g.split(ids[0], moved[-2:], "okapi 1 again", actor="erin")
    log = review.audit_log(g)
    assert [(r["action"], r["actor"]) for r in log[:2]] == [("split", "erin"), ("merge", "dana")]
    assert log[1]["previous"]["individual"] == ids[1] and log[0]["individual_id"] == new


def test_take_out_leaves_members_out_of_the_enrollment_and_undoes(gallery):
    """A clip cluster with one image of another animal: the reviewer takes it out, the confirm enrolls the rest."""
    from reid_hub.errors import ConfigError

    g = gallery
    ids = g._test[0]
    g.update_settings(auto_accept=False)
    e, imgs = _query(g, 1, n=4)
    pid = review.propose(g, e, imgs[0], species="okapi", source="clip9#2", video="clip9", frames=[0, 5, 10, 15],
                         images=imgs)["proposal_id"]
    out = review.decide(g, pid, "take_out", members=[2], actor="alice")
    assert out["taken_out"] == [2] and out["status"] == "pending"
    assert review.decide(g, pid, "take_out", members=[2], actor="alice")["version"] == out["version"]  # a retry
    review.decide(g, pid, "take_out", members=[3], actor="alice")
    assert review.decide(g, pid, "undo", actor="alice")["taken_out"] == [2]  # the last take-out undone
    for bad in ([], [7], [0, 1, 3]):  # nothing named, no such member, nothing left as the animal
        with pytest.raises(ConfigError):
            review.decide(g, pid, "take_out", members=bad)
    before = len(g)
    done = review.decide(g, pid, "confirm", actor="alice")
    assert done["outcome"]["individual_id"] == ids[1] and len(done["outcome"]["image_ids"]) == 3
    assert len(g) == before + 3
    with pytest.raises(ConflictError):  # decided: take-outs come before the decision
        review.decide(g, pid, "take_out", members=[0])
    assert [a["action"] for a in review.audit_log(g, pid)][:4] == ["confirm", "undo", "take_out", "take_out"]
