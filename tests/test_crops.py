"""Crop-videos: a table of detection crops (frame, path[, camera, ...]) through the CLI and the clustering."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from reid_hub.cli import main
from reid_hub.errors import DataError
from reid_hub.evaluation.metrics import cluster_accuracy
from reid_hub.models.loading import save_pretrained
from reid_hub.models.model import create_model
from reid_hub.video import ClusterConfig, cluster_crops, is_crop_table, read_crop_table

SHARED_VIDEO = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "video"


def write_crop_video(folder: Path, k=3, frames=10, cameras=("C1", "C2"), seed=0, noise_seed=None, gain=1.0) -> Path:
    """Crops of k textured animals per frame and camera, rows shuffled within each frame (as exported);
    the animals' textures come from `seed`, the noise from `noise_seed`, `gain` scales the brightness."""
    rng = np.random.default_rng(seed)
    textures = [rng.integers(0, 256, (4, 4, 3)).astype(np.uint8) for _ in range(k)]
    if noise_seed is not None:
        rng = np.random.default_rng(noise_seed)
    rows = []
    for cam in cameras:
        (folder / "crops" / cam).mkdir(parents=True, exist_ok=True)
        for f in range(frames):
            for n, i in enumerate(rng.permutation(k)):
                img = np.asarray(Image.fromarray(textures[i]).resize((40, 30), Image.NEAREST)).astype(np.int16)
                img = np.clip(gain * img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
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


def test_colour_histograms_separate_animals_a_colour_blind_descriptor_mixes(tmp_path):
    """The colour descriptor carries identity where the model's descriptor does not (here: pure noise)."""
    table = read_crop_table(write_crop_video(tmp_path / "rec", k=3, frames=12, cameras=("C1",)))

    class NoiseModel:  # a descriptor blind to identity
        config = create_model("tiny-test").config

        def fingerprint(self):
            return "noise"

        def describe(self, x, raw_features=False):
            return torch.nn.functional.normalize(torch.randn(len(x), 32), dim=1).numpy()

    torch.manual_seed(0)
    accs = {}
    for weight in (0.0, 1.0):
        res = cluster_crops(table, NoiseModel(), ClusterConfig(k=3, use_head=False, color_weight=weight),
                            cache_dir=tmp_path / "c")
        accs[weight] = cluster_accuracy(res.detections["identity"], res.detections["label"])
        assert res.embeddings.shape[1] == 32  # the gallery keeps the model's embeddings, never the colours
    assert accs[1.0] == 1.0 and accs[0.0] < 0.8


def test_colour_histogram_is_a_unit_distribution_that_tells_hues_apart():
    from reid_hub.video import color_histogram, color_histograms

    red, green = Image.new("RGB", (40, 30), (200, 30, 30)), Image.new("RGB", (40, 30), (30, 200, 30))
    grey = Image.new("L", (40, 30), 128)
    h = color_histograms([red, green, grey])
    assert h.shape == (3, 192) and np.allclose(np.linalg.norm(h, axis=1), 1, atol=1e-5)
    assert h[0] @ h[1] < 0.01 and h[0] @ color_histogram(red.resize((80, 60))) > 0.99
    # a grey crop lands in the zero-saturation bins only: a brightness histogram, not noise
    assert np.flatnonzero(h[2]).tolist() == [2]


def _zip_crop_video(folder: Path, table: Path, extra: dict | None = None) -> Path:
    import zipfile

    zpath = folder / "crops.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for p in table.parent.rglob("*"):
            if p.is_file():
                zf.write(p, p.relative_to(table.parent).as_posix())
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return zpath


def test_crop_archive_is_read_safely(tmp_path):
    from reid_hub.video import read_crop_archive

    table = write_crop_video(tmp_path / "rec", k=3, frames=3, cameras=("C1",))
    crops = read_crop_archive(_zip_crop_video(tmp_path, table), tmp_path / "x1")
    assert len(crops) == 9 and all(Path(p).is_relative_to((tmp_path / "x1").resolve()) for p in crops["path"])
    escape = _zip_crop_video(tmp_path, table, {"../evil.txt": "x"})
    with pytest.raises(DataError, match="outside"):
        read_crop_archive(escape, tmp_path / "x2")
    (tmp_path / "secret.jpg").write_bytes((tmp_path / "rec" / "crops" / "C1" / "00000_0.jpg").read_bytes())
    src = pd.read_csv(table)
    src.loc[0, "path"] = str(tmp_path / "secret.jpg")  # a table pointing the server at its own files
    src.to_csv(table, index=False)
    with pytest.raises(DataError, match="inside the archive"):
        read_crop_archive(_zip_crop_video(tmp_path, table), tmp_path / "x3")
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="zip"):
        read_crop_archive(tmp_path / "bad.zip", tmp_path / "x4")


def test_crop_archive_refuses_outside_paths_before_opening_any_file(tmp_path):
    """A crop table naming files outside the archive is refused before any of them is opened: a FIFO outside
    would block the reader forever if it were opened, so the call finishing proves it was never touched."""
    import threading

    from reid_hub.video import read_crop_archive

    fifo = tmp_path / "outside.fifo"
    os.mkfifo(fifo)
    for bad in (str(fifo), "../../../../../../" + str(fifo).lstrip("/"), "/etc/hostname", "../outside.fifo"):
        table = write_crop_video(tmp_path / "rec", k=2, frames=2, cameras=("C1",))
        src = pd.read_csv(table)
        src.loc[1, "path"] = bad
        src.to_csv(table, index=False)
        zpath = _zip_crop_video(tmp_path, table)
        caught: list[BaseException] = []
        worker = threading.Thread(target=lambda: _raises_into(caught, read_crop_archive, zpath, tmp_path / "x"),
                                  daemon=True)
        worker.start()
        worker.join(timeout=60)
        assert not worker.is_alive(), f"{bad}: the reader opened the FIFO outside the archive"
        assert len(caught) == 1 and isinstance(caught[0], DataError) and "row 2" in str(caught[0])
        assert "inside the archive" in str(caught[0])
        shutil.rmtree(tmp_path / "x", ignore_errors=True)
        shutil.rmtree(tmp_path / "rec")


def _raises_into(caught: list, fn, *args) -> None:
    try:
        fn(*args)
    except BaseException as exc:  # noqa: BLE001 - the test inspects whatever was raised
        caught.append(exc)


def test_crop_archive_refuses_bombs_links_and_non_images(tmp_path):
    import stat
    import zipfile

    from reid_hub.errors import TooLargeError
    from reid_hub.video import read_crop_archive

    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("crops.csv", "frame,path\n0,zeros.jpg\n")
        zf.writestr("zeros.jpg", b"\0" * (40 << 20))  # 40 MB of zeros in a ~40 KB entry
    assert bomb.stat().st_size < 200_000
    with pytest.raises(TooLargeError, match="bomb"):
        read_crop_archive(bomb, tmp_path / "b1")
    assert not (tmp_path / "b1").exists() or not any((tmp_path / "b1").rglob("*"))  # nothing was written
    with pytest.raises(TooLargeError, match="more than"):
        read_crop_archive(bomb, tmp_path / "b2", max_bytes=1 << 20)
    link = tmp_path / "link.zip"
    with zipfile.ZipFile(link, "w") as zf:
        zf.writestr("crops.csv", "frame,path\n0,a.jpg\n")
        info = zipfile.ZipInfo("a.jpg")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/hostname")
    with pytest.raises(DataError, match="not a plain file"):
        read_crop_archive(link, tmp_path / "l1")
    table = write_crop_video(tmp_path / "rec", k=2, frames=2, cameras=("C1",))
    src = pd.read_csv(table)
    (table.parent / src.loc[2, "path"]).write_bytes(b"hello")  # a crop that is not an image
    with pytest.raises(DataError, match="row 3: crop .* is not a readable image"):
        read_crop_archive(_zip_crop_video(tmp_path, table), tmp_path / "n1")
