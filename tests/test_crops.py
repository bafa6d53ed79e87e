"""Crop-videos: a table of detection crops (frame, path[, camera, ...]) through the CLI and the clustering."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from reid_hub.cli import main
from reid_hub.errors import DataError
from reid_hub.evaluate import cluster_accuracy
from reid_hub.hub import save_pretrained
from reid_hub.model import create_model
from reid_hub.video import ClusterConfig, cluster_crops, is_crop_table, read_crop_table

SHARED_VIDEO = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "video"


def write_crop_video(folder: Path, k=3, frames=10, cameras=("C1", "C2"), seed=0) -> Path:
    """Crops of k textured animals per frame and camera, rows shuffled within each frame (as exported)."""
    rng = np.random.default_rng(seed)
    textures = [rng.integers(0, 256, (4, 4, 3)).astype(np.uint8) for _ in range(k)]
    rows = []
    for cam in cameras:
        (folder / "crops" / cam).mkdir(parents=True, exist_ok=True)
        for f in range(frames):
            for n, i in enumerate(rng.permutation(k)):
                img = np.asarray(Image.fromarray(textures[i]).resize((40, 30), Image.NEAREST)).astype(np.int16)
                img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
                rel = f"crops/{cam}/{f:05d}_{n}.jpg"
                Image.fromarray(img).save(folder / rel)
                rows.append((cam, f * 80, f"fish_{'ABC'[i]}", rel))
    pd.DataFrame(rows, columns=["camera", "frame", "identity", "path"]).to_csv(folder / "tracks.csv", index=False)
    return folder / "tracks.csv"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    return save_pretrained(create_model("tiny-test"), tmp_path_factory.mktemp("m") / "tiny")


def test_cli_clusters_a_crop_table_and_keeps_input_order(tmp_path, model_dir):
    table = write_crop_video(tmp_path / "rec", k=3, frames=10)
    assert is_crop_table(table) and not is_crop_table(tmp_path / "rec" / "crops")
    out = tmp_path / "out"
    assert main(["video", "cluster", str(table), "--k", "3", "--model", str(model_dir), "--out", str(out),
                 "--epochs", "2", "--cache-dir", str(tmp_path / "c"), "--quiet"]) == 0
    src, labels = pd.read_csv(table), pd.read_csv(out / "labels.csv")
    assert len(labels) == len(src) and "label" in labels
    assert (all(a.endswith(b) for a, b in zip(labels["path"], src["path"])) and (labels["frame"] == src["frame"]).all()
            and (labels["camera"] == src["camera"]).all())
    # one label per animal: within a (camera, frame) no two crops share a label
    assert labels.groupby(["camera", "frame"])["label"].nunique().eq(3).all()
    assert json.loads((out / "summary.json").read_text())["k"] == 3
    assert len(list((out / "crops").glob("cluster_*/*.jpg"))) == 12


def test_crop_table_errors_are_typed(tmp_path, model_dir):
    table = write_crop_video(tmp_path / "rec", k=3, frames=4, cameras=("C1",))
    df = pd.read_csv(table)
    df.drop(columns="frame").to_csv(tmp_path / "noframe.csv", index=False)
    with pytest.raises(DataError, match="frame"):
        read_crop_table(tmp_path / "noframe.csv")
    df.assign(path=df["path"].str.replace("00000_0", "missing")).to_csv(tmp_path / "rec" / "gone.csv", index=False)
    with pytest.raises(DataError, match="not found"):
        read_crop_table(tmp_path / "rec" / "gone.csv")
    df.assign(frame="x").to_csv(tmp_path / "rec" / "badframe.csv", index=False)
    with pytest.raises(DataError, match="integer"):
        read_crop_table(tmp_path / "rec" / "badframe.csv")
    base = ["--model", str(model_dir), "--out", str(tmp_path / "o"), "--epochs", "1", "--quiet",
            "--cache-dir", str(tmp_path / "c")]
    assert main(["video", "cluster", str(table), "--k", "99"] + base) == 3  # k larger than the crops
    assert main(["video", "cluster", str(table), "--detections", str(table), "--k", "3"] + base) != 0


def test_separable_crops_are_identified_across_cameras(tmp_path):
    """Descriptors that carry the identity: joint clustering of two cameras gives each animal one label."""
    table = read_crop_table(write_crop_video(tmp_path / "rec", k=3, frames=12))

    class ColourModel:  # a stand-in descriptor: the mean colour of the crop (the textures differ in colour)
        config = create_model("tiny-test").config

        def fingerprint(self):
            return "colour"

        def describe(self, x, raw_features=False):
            return torch.nn.functional.normalize(x.mean(dim=(2, 3)) + 3, dim=1).numpy()

    res = cluster_crops(table, ColourModel(), ClusterConfig(k=3, use_head=False), cache_dir=tmp_path / "c")
    det = res.detections
    assert cluster_accuracy(det["identity"], det["label"]) == 1.0


@pytest.mark.shared
def test_shared_fish_crop_video_reads(shared_data):
    table = read_crop_table(SHARED_VIDEO / "fish_fs48_seq049" / "tracks.csv")
    assert set(table["camera"]) == {"C1", "C2", "C3"} and table["input_row"].is_monotonic_increasing
    assert all(Path(p).is_file() for p in table["path"][:5])
