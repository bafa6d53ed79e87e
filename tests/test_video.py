"""Per-video clustering: pseudo-labels, loss, constrained assignment, detection formats, bad input,
descriptor cache, the head on synthetic data and on the shipped real video, the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from reid_hub.errors import ConfigError, DataError
from reid_hub.evaluation.metrics import cluster_accuracy, clustering_metrics, idf1
from reid_hub.models.model import create_model
from reid_hub.training.losses import SigmoidPairLoss
from reid_hub.video import (ClusterConfig, HeadConfig, box_iou, cluster_descriptors, cluster_video, compute_descriptors,
                            constrained_assign, frame_groups, hungarian_pair_labels, iou_links, iou_tracklets,
                            load_video_detections, make_pseudo_video, open_frames, read_detections, read_tracks_csv,
                            train_head)
from reid_hub.video.head import prototype_labels

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "examples" / "fly_pair_clip_gt"


# -- synthetic data ---------------------------------------------------------------------------------
def synthetic_descriptors(k=3, frames=200, d=32, id_norm=0.8, pose_norm=2.0, poses=3, seed=0):
    """Descriptors where a strong shared nuisance ('pose') hides a weaker identity signal."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(k, d))
    u = id_norm * u / np.linalg.norm(u, axis=1, keepdims=True)
    v = rng.normal(size=(poses, d))
    v = pose_norm * v / np.linalg.norm(v, axis=1, keepdims=True)
    rows, x = [], []
    for f in range(frames):
        for i in range(k):
            x.append(u[i] + v[rng.integers(poses)] + rng.normal(0, 0.15, d))
            rows.append((f, 10.0 + 50 * i, 10.0, 40.0, 40.0, 1.0, -1, f"id{i}"))
    det = pd.DataFrame(rows, columns=["frame", "x", "y", "w", "h", "score", "track", "identity"])
    return np.asarray(x, np.float32), det


def write_moving_animals(folder: Path, k=3, frames=12, size=(160, 120), seed=0, as_video=False):
    """Frames of k textured squares moving slowly, as PNG frames (or an mp4), plus their ground truth."""
    rng = np.random.default_rng(seed)
    textures = [rng.integers(0, 256, (4, 4, 3)).astype(np.uint8) for _ in range(k)]
    pos = np.array([[10 + 45 * i, 40] for i in range(k)], dtype=float)
    rows, images = [], []
    for f in range(frames):
        canvas = np.full((size[1], size[0], 3), 90, np.uint8)
        for i in range(k):
            x, y = pos[i].astype(int)
            canvas[y:y + 32, x:x + 32] = np.asarray(Image.fromarray(textures[i]).resize((32, 32), Image.NEAREST))
            rows.append((f, float(x), float(y), 32.0, 32.0, 0.9, i, f"a{i}"))
        pos += rng.integers(-1, 2, pos.shape)
        images.append(canvas)
    folder.mkdir(parents=True, exist_ok=True)
    if as_video:
        import cv2

        path = folder / "clip.mp4"
        w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, size)
        for im in images:
            w.write(im[:, :, ::-1])
        w.release()
    else:
        path = folder / "frames"
        path.mkdir(exist_ok=True)
        for f, im in enumerate(images):
            Image.fromarray(im).save(path / f"frame{f:05d}.png")
    det = pd.DataFrame(rows, columns=["frame", "x", "y", "w", "h", "score", "track", "identity"])
    det.to_csv(folder / "detections.csv", index=False)
    return path, det


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return create_model("tiny-test")


# -- pseudo-labels and loss -------------------------------------------------------------------------
def test_hungarian_pair_labels_follow_the_optimal_assignment():
    sim = np.array([[0.1, 0.9, 0.2], [0.8, 0.85, 0.1], [0.3, 0.2, 0.7]])
    y = hungarian_pair_labels(sim)
    # the greedy choice (row 1 -> col 1, 0.85) is not optimal: row 0 -> 1, row 1 -> 0, row 2 -> 2
    assert y[0, 1] == 1 and y[1, 0] == 1 and y[2, 2] == 1
    assert (y == 1).sum() == 3 and (y == -1).sum() == 6
    rect = hungarian_pair_labels(np.array([[0.9, 0.1, 0.2], [0.1, 0.2, 0.8]]))  # 2 vs 3 detections
    assert rect.tolist() == [[1, -1, -1], [-1, -1, 1]]
    gated = hungarian_pair_labels(np.array([[0.9, 0.1], [0.1, 0.2]]), min_similarity=0.5)
    assert gated.tolist() == [[1, -1], [-1, 0]]


def test_prototype_labels_give_each_frame_distinct_identities():
    logits = np.array([[0.9, 0.8], [0.95, 0.1], [0.2, 0.3], [0.5, 0.4], [0.6, 0.1]])
    groups = [np.array([0, 1]), np.array([2]), np.array([3, 4])]
    ids = prototype_labels(logits, groups)
    assert ids[0] != ids[1] and ids[1] == 0 and ids[0] == 1  # row 0 prefers 0 but row 1 needs it more
    assert ids[2] == 1 and ids[3] != ids[4]


def test_sigmoid_pair_loss_matches_its_formula_and_ignores_unlabelled_pairs():
    loss = SigmoidPairLoss(init_temperature=10.0, init_bias=-5.0)
    sim = torch.tensor([[0.9, -0.2], [0.3, 0.5]], requires_grad=True)
    y = torch.tensor([[1, -1], [0, 1]])
    w = torch.tensor([[1.0, 0.5], [1.0, 2.0]])
    got = loss(sim, y, w)
    logits = 10 * sim.detach() - 5
    expect = (1.0 * torch.log1p(torch.exp(-logits[0, 0])) + 0.5 * torch.log1p(torch.exp(logits[0, 1]))
              + 2.0 * torch.log1p(torch.exp(-logits[1, 1]))) / 3.5
    assert torch.allclose(got, expect, atol=1e-6)
    got.backward()
    assert sim.grad[0, 0] < 0 and sim.grad[0, 1] > 0 and sim.grad[1, 0] == 0  # pull, push, ignore
    assert loss(sim, torch.zeros_like(y)).item() == 0.0
    with pytest.raises(ConfigError):
        loss(sim, torch.zeros(3, 3))


# -- assignment and clustering ----------------------------------------------------------------------
def test_constrained_assignment_never_gives_one_frame_two_detections_of_one_animal():
    z = np.array([[1, 0], [0.9, 0.1], [0.2, 0.98], [1, 0], [0.99, 0.05], [0.98, 0.1]], np.float32)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    groups = [np.array([0, 1]), np.array([2, 3]), np.array([4, 5])]
    centres = np.array([[1, 0], [0, 1]], np.float32)
    free = (z @ centres.T).argmax(axis=1)
    assert free[0] == free[1]  # unconstrained: both detections of frame 0 go to cluster 0
    labels, conflict = constrained_assign(z, groups, centres.copy(), iters=1)
    for g in groups:
        assert len(set(labels[g])) == len(g)
    assert not conflict.any()
    crowded = [np.array([0, 1, 2])]  # 3 detections, k=2: one is flagged, not dropped
    labels, conflict = constrained_assign(z[:3], crowded, centres.copy(), iters=1)
    assert conflict.sum() == 1 and set(labels[~conflict]) == {0, 1}


def test_head_beats_plain_kmeans_when_a_nuisance_dominates():
    x, det = synthetic_descriptors()
    truth = det["identity"].to_numpy()
    plain = cluster_descriptors(x, det, ClusterConfig(k=3, use_head=False, constrained=False))
    head = cluster_descriptors(x, det, ClusterConfig(k=3, head=HeadConfig(epochs=20)))
    assert cluster_accuracy(truth, plain.labels) < 0.7
    assert cluster_accuracy(truth, head.labels) > 0.95
    pairwise = cluster_descriptors(x, det, ClusterConfig(k=3, head=HeadConfig(pseudo_labels="pairwise")))
    assert cluster_accuracy(truth, pairwise.labels) > 0.9
    supervised = cluster_descriptors(x, det, ClusterConfig(k=3), identities=truth)
    assert cluster_accuracy(truth, supervised.labels) > 0.95


def test_k_is_estimated_when_unknown_even_with_animals_missing_from_frames():
    x, det = synthetic_descriptors(k=4, id_norm=2.5, pose_norm=0.5)
    rng = np.random.default_rng(1)
    keep = rng.random(len(det)) < 0.7  # animals often out of view: per-frame counts underestimate k
    det, x = det[keep].reset_index(drop=True), x[keep]
    res = cluster_descriptors(x, det, ClusterConfig(k=None))
    assert res.k == 4 and res.k_estimate.method == "co-occurrence"
    assert res.k_estimate.runner_up == 5 and 0 < res.k_estimate.confidence <= 1 and 4 in res.k_estimate.scores
    assert cluster_accuracy(det["identity"].to_numpy(), res.labels) > 0.95


def test_tracklets_link_only_unambiguous_overlaps():
    det = pd.DataFrame({"frame": [0, 0, 1, 1, 2], "x": [0, 100, 2, 101, 3], "y": [0, 0, 0, 0, 0],
                        "w": [50, 50, 50, 50, 50], "h": [50, 50, 50, 50, 50], "score": 1.0, "track": -1})
    assert sorted(iou_links(det)) == [(0, 2), (1, 3), (2, 4)]
    t = iou_tracklets(det)
    assert t[0] == t[2] == t[4] and t[1] == t[3] and t[0] != t[1]
    assert box_iou(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 10, 10]]))[0, 0] == pytest.approx(1 / 3)


def test_clustering_metrics_and_idf1():
    truth = np.array(["a", "a", "b", "b"])
    assert clustering_metrics(truth, np.array([1, 1, 0, 0])) == {"accuracy": 1.0, "ari": 1.0, "ami": 1.0, "nmi": 1.0}
    assert cluster_accuracy(truth, np.array([0, 1, 1, 1])) == 0.75
    gt = pd.DataFrame({"frame": [0, 0, 1, 1], "x": [0, 100, 0, 100], "y": 0, "w": 50, "h": 50,
                       "identity": ["a", "b", "a", "b"]})
    pred = gt.assign(label=[7, 8, 8, 7])  # an identity switch at frame 1
    assert idf1(gt, pred) == pytest.approx(0.5)
    assert idf1(gt, gt.assign(label=[1, 2, 1, 2])) == 1.0
    shifted = gt.assign(label=[1, 2, 1, 2], x=gt["x"] + 40)  # boxes that no longer overlap enough
    assert idf1(gt, shifted) == 0.0


# -- detection formats ------------------------------------------------------------------------------
def test_every_detection_format_reads_to_the_same_table(tmp_path):
    W, H = 200, 100
    boxes = [(0, 10.0, 20.0, 30.0, 40.0, 0.9, 1), (0, 100.0, 10.0, 50.0, 50.0, 0.8, 2), (3, 12.0, 22.0, 30.0, 40.0, 0.7, 1)]
    md = {"detection_categories": {"1": "animal", "2": "person"}, "images": [
        {"file": "clip.mp4/frame000000.jpg", "detections": [
            {"category": "1", "conf": 0.9, "bbox": [10 / W, 20 / H, 30 / W, 40 / H]},
            {"category": "1", "conf": 0.8, "bbox": [100 / W, 10 / H, 50 / W, 50 / H]},
            {"category": "2", "conf": 0.99, "bbox": [0.1, 0.1, 0.1, 0.1]},   # a person: not an animal
            {"category": "1", "conf": 0.2, "bbox": [0.5, 0.5, 0.1, 0.1]}]},  # below the threshold
        {"file": "clip.mp4/frame000003.jpg", "detections": [
            {"category": "1", "conf": 0.7, "bbox": [12 / W, 22 / H, 30 / W, 40 / H]}]},
        {"file": "clip.mp4/frame000004.jpg", "failure": "corrupt frame"}]}
    (tmp_path / "md.json").write_text(json.dumps(md))
    (tmp_path / "det.txt").write_text("".join(f"{f + 1},{t},{x},{y},{w},{h},{s},-1,-1,-1\n"
                                              for f, x, y, w, h, s, t in boxes))
    coco = {"images": [{"id": 5, "file_name": "frame_000000.jpg", "width": W, "height": H},
                       {"id": 6, "file_name": "frame_000003.jpg", "width": W, "height": H}],
            "categories": [{"id": 1, "name": "animal"}],
            "annotations": [{"id": i, "image_id": 5 if f == 0 else 6, "category_id": 1, "bbox": [x, y, w, h],
                             "score": s, "track_id": t} for i, (f, x, y, w, h, s, t) in enumerate(boxes)]}
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    pd.DataFrame(boxes, columns=["frame", "x", "y", "w", "h", "score", "track"]).to_csv(tmp_path / "d.csv", index=False)
    tables = {name: read_detections(tmp_path / name, frame_size=(W, H))
              for name in ("md.json", "det.txt", "coco.json", "d.csv")}
    for name, t in tables.items():
        assert t[["frame", "x", "y", "w", "h", "score"]].to_numpy() == pytest.approx(
            np.array([b[:6] for b in boxes]), abs=1e-6), name
    assert tables["det.txt"]["track"].tolist() == [1, 2, 1]
    assert len(read_detections(tmp_path / "md.json", frame_size=(W, H), min_score=0.1)) == 4


def test_bad_detection_input_gets_clear_errors(tmp_path):
    (tmp_path / "d.csv").write_text("frame,x,y,w,h\n0,500,500,10,10\n")
    with pytest.raises(DataError, match="outside the 100x100 frame"):
        read_detections(tmp_path / "d.csv", frame_size=(100, 100))
    clipped = pd.DataFrame({"frame": [0], "x": [90.0], "y": [-5.0], "w": [20.0], "h": [20.0]})
    (tmp_path / "c.csv").write_text(clipped.to_csv(index=False))
    t = read_detections(tmp_path / "c.csv", frame_size=(100, 100))
    assert t[["x", "y", "w", "h"]].iloc[0].tolist() == [90.0, 0.0, 10.0, 15.0]
    (tmp_path / "late.csv").write_text("frame,x,y,w,h\n7,1,1,10,10\n")
    with pytest.raises(DataError, match="has 5 frames"):
        read_detections(tmp_path / "late.csv", n_frames=5)
    (tmp_path / "neg.csv").write_text("frame,x,y,w,h\n0,1,1,-3,10\n")
    with pytest.raises(DataError, match="positive width"):
        read_detections(tmp_path / "neg.csv")
    (tmp_path / "cols.csv").write_text("frame,left,top\n0,1,1\n")
    with pytest.raises(DataError, match="lacks the column"):
        read_detections(tmp_path / "cols.csv")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        read_detections(tmp_path / "bad.json")
    (tmp_path / "md.json").write_text(json.dumps({"images": [{"file": "f0.jpg", "detections": [
        {"category": "1", "conf": 0.9, "bbox": [0.1, 0.1, 0.2, 0.2]}]}]}))
    with pytest.raises(ConfigError, match="frame size"):
        read_detections(tmp_path / "md.json")
    with pytest.raises(ConfigError):
        read_detections(tmp_path / "d.csv", fmt="yolo")
    with pytest.raises(DataError, match="not found"):
        read_detections(tmp_path / "missing.csv")


def test_bad_video_input_gets_clear_errors(tmp_path, tiny_model):
    fake = tmp_path / "clip.mp4"
    fake.write_bytes(b"this is not a video")
    with pytest.raises(DataError, match="cannot"):
        open_frames(fake)
    with pytest.raises(DataError, match="not found"):
        open_frames(tmp_path / "nope.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no frame images"):
        open_frames(tmp_path / "empty")
    frames, det = write_moving_animals(tmp_path / "v", k=2, frames=4)
    with pytest.raises(DataError, match="has 4 frames"):
        load_video_detections(frames, det.assign(frame=det["frame"] + 2))
    with pytest.raises(DataError, match="k=9 animals but the video has only 8 detections"):
        cluster_video(frames, det, tiny_model, ClusterConfig(k=9), cache_dir=tmp_path / "c")
    with pytest.raises(DataError, match="no detections"):
        cluster_video(frames, det.assign(score=0.1), tiny_model, ClusterConfig(k=2), cache_dir=tmp_path / "c")


def test_frames_with_fewer_or_more_detections_than_k_are_handled():
    x, det = synthetic_descriptors(k=3, frames=60, id_norm=2.0, pose_norm=0.3)
    det, x = det.iloc[1:].reset_index(drop=True), x[1:]  # frame 0 shows only 2 animals
    res = cluster_descriptors(x, det, ClusterConfig(k=2, use_head=False))  # k too small: 3 per frame
    assert len(res.labels) == len(det) and res.detections["conflict"].sum() == det["frame"].nunique() - 1


# -- descriptors, cache, end to end -----------------------------------------------------------------
def test_descriptors_are_cached_and_a_killed_run_resumes(tmp_path, tiny_model):
    frames, det = write_moving_animals(tmp_path / "v", k=3, frames=10)
    source = open_frames(frames)
    timings: dict = {}
    first = np.array(compute_descriptors(source, det, tiny_model, cache_dir=tmp_path / "c", batch_size=4,
                                         timings=timings))
    assert first.shape == (30, tiny_model.embedding_dim) and timings["cached"] is False
    again: dict = {}
    assert np.array_equal(first, compute_descriptors(source, det, tiny_model, cache_dir=tmp_path / "c",
                                                     timings=again))
    assert again["cached"] is True
    backbone = compute_descriptors(source, det, tiny_model, kind="backbone", cache_dir=tmp_path / "c")
    assert backbone.shape[0] == 30 and backbone.shape[1] != first.shape[1] or not np.array_equal(backbone, first)

    class Dies:  # a model that is killed after two batches
        def __init__(self, model):
            self.model, self.calls, self.config = model, 0, model.config

        def fingerprint(self):
            return self.model.fingerprint()

        def describe(self, x, raw_features=False):
            if len(x) > 1:
                self.calls += 1
                if self.calls > 2:
                    raise KeyboardInterrupt
            return self.model.describe(x, raw_features)

    cache2 = tmp_path / "c2"
    with pytest.raises(KeyboardInterrupt):
        compute_descriptors(source, det, Dies(tiny_model), cache_dir=cache2, batch_size=4)
    progress = json.loads(next(cache2.glob("*.json")).read_text())
    assert progress["done"] == 8
    resumed = compute_descriptors(source, det, tiny_model, cache_dir=cache2, batch_size=4)
    np.testing.assert_allclose(resumed, first, atol=1e-6)


def test_cli_clusters_a_video_writes_mot_and_gives_persistent_ids(tmp_path, tiny_model):
    from reid_hub.cli import main
    from reid_hub.models.loading import save_pretrained

    model_dir = save_pretrained(tiny_model, tmp_path / "m")
    video, det = write_moving_animals(tmp_path / "v", k=3, frames=12, as_video=True)
    out, gallery = tmp_path / "out", tmp_path / "gal"
    args = ["video", "cluster", str(video), "--detections", str(tmp_path / "v" / "detections.csv"), "--k", "3",
            "--model", str(model_dir), "--out", str(out), "--epochs", "2", "--gallery", str(gallery),
            "--cache-dir", str(tmp_path / "c"), "--quiet"]
    assert main(args) == 0
    labels = pd.read_csv(out / "labels.csv")
    assert len(labels) == 36 and labels.groupby("frame")["label"].nunique().eq(3).all()
    mot = pd.read_csv(out / "tracks.txt", header=None)
    assert mot.shape == (36, 10) and mot[0].min() == 1 and set(mot[1]) == {1, 2, 3}
    assert len(np.load(out / "prototypes.npz").files) == 3
    assert len(list((out / "crops").glob("cluster_*/*.jpg"))) == 12
    from reid_hub.gallery import open_gallery

    g = open_gallery(gallery, tiny_model, create=False)
    n_ind, n_img = len(g.individuals()), len(g)
    g.close()
    assert n_ind == 3 and n_img == 36
    assert main(args) == 0  # the same clip again: same individuals, nothing added
    g = open_gallery(gallery, tiny_model, create=False)
    assert len(g.individuals()) == 3 and len(g) == 36
    g.close()
    bad = args[:]
    bad[bad.index("--k") + 1] = "99"
    assert main(bad) == 3


def test_pseudo_video_shows_each_visible_individual_once_per_frame():
    photos = {f"id{i}": list(range(10 * i, 10 * i + 5)) for i in range(6)}
    det = make_pseudo_video(photos, k=4, n_frames=50, variants=3, visibility=0.7, seed=1)
    assert det["identity"].nunique() == 4
    assert det.groupby("frame")["identity"].apply(lambda s: s.is_unique).all()
    assert 0.55 < len(det) / (4 * 50) < 0.85 and det["variant"].between(0, 2).all()
    for ident, rows in det.groupby("identity"):
        assert set(rows["photo"]) <= set(photos[ident])
    with pytest.raises(DataError):
        make_pseudo_video(photos, k=7, n_frames=5)


def test_self_supervised_head_identifies_the_two_flies_of_the_real_clip(tmp_path):
    """Real video (SLEAP fly pair, ground-truth identities, shipped in examples/), released model."""
    from reid_hub.models.loading import from_pretrained

    model = from_pretrained("multispecies-v1")
    source, det = load_video_detections(DEMO / "video.mp4", DEMO / "tracks.csv", min_score=0.0)
    det = det[det["frame"] % 2 == 0].reset_index(drop=True)  # every other frame keeps the test short
    desc = compute_descriptors(source, det, model, cache_dir=tmp_path)
    truth = det["identity"].to_numpy()
    plain = cluster_descriptors(desc, det, ClusterConfig(k=2, use_head=False, constrained=False))
    head = cluster_descriptors(desc, det, ClusterConfig(k=2))
    acc_plain, acc_head = cluster_accuracy(truth, plain.labels), cluster_accuracy(truth, head.labels)
    assert acc_head > 0.95 and acc_head > acc_plain + 0.2, (acc_plain, acc_head)
    assert len(frame_groups(det)) == det["frame"].nunique()


def test_cooccurrence_score_flags_one_animal_split_in_two():
    from reid_hub.video import cooccurrence_score

    frames, k = 60, 3
    groups = [np.arange(f * k, f * k + k) for f in range(frames)]
    truth = np.tile(np.arange(k), frames)
    assert cooccurrence_score(truth, groups, k) > 0.5  # three animals seen together every frame
    split = truth.copy()
    split[(truth == 0) & (np.repeat(np.arange(frames), k) % 2 == 1)] = 3  # animal 0 in two clusters
    assert cooccurrence_score(split, groups, 4) < 1e-6


def test_head_trains_at_least_min_steps_on_a_short_video():
    x, det = synthetic_descriptors(k=3, frames=12)
    _, info = train_head(x, frame_groups(det), HeadConfig(epochs=1, min_steps=40, hidden_dim=16, out_dim=8), k=3)
    assert info["steps"] == 40


def test_default_path_identifies_the_flies_of_the_real_clip_and_their_number(tmp_path):
    """The default path (default model, colour, head, IoU tracklets for a real video) on consecutive frames
    of the shipped SLEAP clip: every detection right, and k=2 estimated when left out."""
    from reid_hub.models.loading import DEFAULT_MODEL, from_pretrained

    model = from_pretrained(DEFAULT_MODEL)
    tracks = read_tracks_csv(DEMO / "tracks.csv")
    tracks = tracks[tracks["frame"] < 300].reset_index(drop=True)
    result, _ = cluster_video(DEMO / "video.mp4", tracks, model, ClusterConfig(), min_score=0.0, cache_dir=tmp_path)
    assert result.k == 2 and result.k_estimate.runner_up == 3
    assert cluster_accuracy(result.detections["identity"], result.labels) == 1.0


def test_demo_command_reports_its_frame_window_backend_and_scores():
    """`reid-hub demo` on a short window of its default segment: the output names the frames and the backend
    it used, and the head identifies the two flies there (the window's real labels score it)."""
    import re
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "reid_hub.cli", "demo", "--start", "750", "--frames", "80"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "frames 750-829 (80 frames, 160 detections)" in r.stdout
    assert "backend onnx;" in r.stdout  # auto on CPU with onnxruntime installed
    head = float(re.search(r"self-supervised head \+ per-frame assignment: accuracy ([0-9.]+)", r.stdout).group(1))
    assert head >= 0.95, r.stdout
    r = subprocess.run([sys.executable, "-m", "reid_hub.cli", "demo", "--start", "5000", "--frames", "10"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 3 and "no frames in" in r.stderr and "Traceback" not in r.stderr


def test_prefetched_keeps_order_raises_the_producers_error_and_stops_early():
    from reid_hub.video.descriptors import prefetched

    assert list(prefetched(iter(range(100)), depth=3)) == list(range(100))

    def broken():
        yield 1
        raise DataError("frame 7 is missing")

    got = []
    with pytest.raises(DataError, match="frame 7"):
        for v in prefetched(broken(), depth=2):
            got.append(v)
    assert got == [1]
    produced = []

    def counting():
        for i in range(10_000):
            produced.append(i)
            yield i

    it = prefetched(counting(), depth=4)
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    it.close()  # the consumer stops: the producer stops too, a few items ahead at most
    assert len(produced) < 20
