import numpy as np
import pandas as pd
import pytest
from PIL import Image

from reid_hub.data import tables as rdata
from reid_hub.errors import DataError


def test_metadata_folders_load_with_species_qualified_labels(toy_data):
    df = rdata.load_sources(toy_data)
    assert list(df.columns) == list(rdata.COLUMNS)
    assert set(df["species"]) == {"toyfox", "toyowl"}
    assert df["label"].nunique() == 11
    assert all(lbl.startswith(sp + "/") for lbl, sp in zip(df["label"], df["species"]))
    assert all(isinstance(p, str) and p.endswith(".png") for p in df["image"])


def test_missing_columns_and_files_are_data_errors(tmp_path):
    with pytest.raises(DataError):
        rdata.load_metadata_folder(tmp_path)
    (tmp_path / "metadata.csv").write_text("image_id,file\n1,a.png\n")
    with pytest.raises(DataError, match="path"):
        rdata.load_metadata_folder(tmp_path)
    with pytest.raises(DataError):
        rdata.load_any(tmp_path / "nothing_here")


def test_bbox_column_and_unknown_identities(tmp_path):
    Image.new("RGB", (40, 30)).save(tmp_path / "a.png")
    (tmp_path / "metadata.csv").write_text(
        'image_id,path,identity,species,bbox\n'
        'x1,a.png,A,zebra,"[1, 2, 10, 20]"\n'
        'x2,a.png,unknown,zebra,\n'
        'x3,a.png,B,zebra,"3,4,5,6"\n')
    df = rdata.load_metadata_folder(tmp_path)
    assert list(df["image_id"]) == ["x1", "x3"]
    assert df["bbox"].tolist() == [(1.0, 2.0, 10.0, 20.0), (3.0, 4.0, 5.0, 6.0)]
    assert rdata.read_sample(df.iloc[0]).size == (10, 20)
    (tmp_path / "metadata.csv").write_text('path,identity,bbox\na.png,A,"1,2,-3,4"\n')
    with pytest.raises(DataError, match="bbox"):
        rdata.load_metadata_folder(tmp_path)


def test_split_is_identity_disjoint_per_species_and_seeded(toy_data):
    df = rdata.load_sources(toy_data)
    a = rdata.split_by_identity(df, 0.4, seed=3)
    b = rdata.split_by_identity(df, 0.4, seed=3)
    c = rdata.split_by_identity(df, 0.4, seed=4)
    assert a["split"].tolist() == b["split"].tolist()
    assert a["split"].tolist() != c["split"].tolist()
    per_label = a.groupby("label")["split"].nunique()
    assert (per_label == 1).all()
    for sp, part in a.groupby("species"):
        assert part[part.split == "unseen"]["label"].nunique() == round(0.4 * part["label"].nunique())


def test_saved_split_is_reapplied(toy_data, tmp_path):
    df = rdata.split_by_identity(rdata.load_sources(toy_data), 0.3, seed=1)
    df[["image_id", "split"]].to_csv(tmp_path / "split.csv", index=False)
    again = rdata.apply_split(rdata.load_sources(toy_data), tmp_path / "split.csv")
    assert again["split"].tolist() == df["split"].tolist()


def test_wildlife_datasets_table(toy_data):
    meta = pd.read_csv(toy_data[0] / "metadata.csv")
    wd = meta[["image_id", "identity", "path"]].copy()  # the columns wildlife-datasets' df always has
    wd.loc[0, "identity"] = "unknown"
    df = rdata.load_wildlife_dataframe(wd, toy_data[0], name="ToyFox", species="fox")
    assert len(df) == len(meta) - 1 and set(df["species"]) == {"fox"} and df["dataset"].iloc[0] == "ToyFox"

    class FakeWD:  # the attributes a wildlife_datasets.datasets.* object exposes
        pass

    obj = FakeWD()
    obj.df, obj.root = wd, str(toy_data[0])
    assert len(rdata.load_wildlife_dataset(obj)) == len(meta) - 1


def test_hugging_face_dataset_with_image_column(toy_data, tmp_path):
    datasets = pytest.importorskip("datasets")
    meta = pd.read_csv(toy_data[1] / "metadata.csv")
    ds = datasets.Dataset.from_dict({
        "image": [str(toy_data[1] / p) for p in meta["path"]],
        "identity": meta["identity"].tolist(),
        "species": meta["species"].tolist(),
    }).cast_column("image", datasets.Image())
    df = rdata.load_hf_dataset(ds)
    assert len(df) == len(meta) and df["label"].nunique() == 5
    img = rdata.read_sample(df.iloc[0])
    assert img.size == (48, 48)
    ds.to_parquet(str(tmp_path / "toy.parquet"))
    df2 = rdata.load_any(tmp_path / "toy.parquet")
    assert len(df2) == len(meta)
    assert np.array_equal(np.asarray(rdata.read_sample(df2.iloc[3])), np.asarray(rdata.read_sample(df.iloc[3])))


def test_embeddings_parquet_round_trip_loads_in_datasets(toy_data, tmp_path):
    datasets = pytest.importorskip("datasets")
    df = rdata.load_sources(toy_data)
    emb = np.random.default_rng(0).normal(size=(len(df), 8)).astype(np.float32)
    path = rdata.write_embeddings_parquet(tmp_path / "e.parquet", df, emb, "tiny", "abc")
    rows, back, meta = rdata.read_embeddings_parquet(path)
    assert np.array_equal(back, emb) and meta["reid_hub_fingerprint"] == "abc"
    assert rows["image_id"].tolist() == df["image_id"].tolist()
    ds = datasets.Dataset.from_parquet(str(path))
    assert len(ds) == len(df) and len(ds[0]["embedding"]) == 8
    with pytest.raises(DataError):
        rdata.write_embeddings_parquet(tmp_path / "x.parquet", df, emb[:3], "tiny", "abc")


def test_class_balanced_sampler_covers_rare_classes():
    targets = [0] * 50 + [1] * 2 + [2] * 3
    s = rdata.ClassBalancedSampler(targets, num_samples=60, images_per_class=4, seed=0)
    idx = list(iter(s))
    assert len(idx) == 60
    drawn = np.bincount([targets[i] for i in idx], minlength=3)
    assert drawn[1] >= 16 and drawn[2] >= 16  # plain shuffling would give about 2 and 3
    s.set_epoch(1)
    assert list(iter(s)) != idx


def test_real_shared_data_loads(shared_data):
    folders = [p.parent for p in sorted(shared_data.glob("*/metadata.csv"))]
    df = rdata.load_sources(folders)
    assert df["species"].nunique() >= 2 and len(df) > 1000
    split = rdata.split_by_identity(df)
    assert (split.groupby("label")["split"].nunique() == 1).all()
