"""Embedding collections: Ray Data (local mode, 2 workers) gives the same vectors as the local path;
broken inputs land in the errors table; a re-run skips what is done; shards load into a gallery."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import make_identity_images

from reid_hub import create_model, save_pretrained
from reid_hub.data import tables as rdata
from reid_hub.errors import ConfigError, ModelMismatchError
from reid_hub.scale.embedding import EmbedJob, done_image_ids, embed_collection, ingest_shards, read_embedding_shards


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    root = tmp_path_factory.mktemp("coll")
    folder = make_identity_images(root / "toy", "toyfox", 5, 6, seed=3)
    (folder / "images" / "id0" / "0.png").write_bytes(b"definitely not a png")
    model = save_pretrained(create_model("tiny-test"), root / "model")
    return root, rdata.load_sources([folder]), model


def _by_id(out):
    rows, emb, meta = read_embedding_shards(out)
    return dict(zip(rows["image_id"], emb)), meta


def test_local_engine_shards_records_errors_and_resumes(collection, tmp_path):
    root, df, model = collection
    out = tmp_path / "local"
    first = embed_collection(df, EmbedJob(str(model), str(out), batch_size=4, commit_rows=8), progress=False)
    assert first["embedded"] == 29 and first["errors"] == 1
    assert len(list((out / "shards").glob("part-*.parquet"))) >= 3  # committed in pieces
    errors = pd.read_parquet(out / "errors.parquet")
    assert errors["image_id"].tolist() == ["toyfox/id0/0"] and "ImageError" in errors["error"].iloc[0]
    # a killed run leaves a partial shard set: remove one shard, the re-run redoes exactly its images
    shard = sorted((out / "shards").glob("part-*.parquet"))[0]
    lost = len(pd.read_parquet(shard, columns=["image_id"]))
    shard.unlink()
    again = embed_collection(df, EmbedJob(str(model), str(out)), progress=False)
    assert again["skipped_done"] == 29 - lost and again["embedded"] == lost and again["errors"] == 1
    assert len(done_image_ids(out)) == 29
    other = save_pretrained(create_model("tiny-test", embedding_dim=16), tmp_path / "m2")
    with pytest.raises(ModelMismatchError):
        embed_collection(df, EmbedJob(str(other), str(out)), progress=False)
    with pytest.raises(ConfigError):
        EmbedJob(str(model), str(out), engine="spark")


def test_ray_local_mode_matches_the_local_path_and_feeds_a_gallery(collection, tmp_path):
    pytest.importorskip("ray")
    from reid_hub.gallery import open_gallery
    from reid_hub.models.loading import from_pretrained

    root, df, model = collection
    local = tmp_path / "local"
    embed_collection(df, EmbedJob(str(model), str(local)), progress=False)
    ray_out = tmp_path / "ray"
    res = embed_collection(df, EmbedJob(str(model), str(ray_out), engine="ray", workers=2, batch_size=4,
                                        commit_rows=10), progress=False)
    assert res["embedded"] == 29 and res["errors"] == 1
    a, meta_a = _by_id(local)
    b, meta_b = _by_id(ray_out)
    assert a.keys() == b.keys() and meta_a == meta_b
    assert max(float(np.abs(a[k] - b[k]).max()) for k in a) < 1e-5
    assert pd.read_parquet(ray_out / "errors.parquet")["image_id"].tolist() == ["toyfox/id0/0"]
    g = open_gallery(tmp_path / "gal", from_pretrained(str(model)))
    assert ingest_shards(g, ray_out, species="toyfox") == 29
    assert len(g.individuals()) == 5 and len(g) == 29
    g.close()


def test_many_videos_are_described_with_failures_recorded_and_done_ones_skipped(collection, tmp_path):
    from test_video import write_moving_animals

    from reid_hub.scale.embedding import embed_videos

    root, _, model = collection
    v1, _ = write_moving_animals(tmp_path / "a", k=2, frames=5, as_video=True)
    v2, _ = write_moving_animals(tmp_path / "b", k=3, frames=4)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    table = pd.DataFrame({"video": [v1, v2, broken], "name": ["a", "b", "broken"],
                          "detections": [tmp_path / "a" / "detections.csv", tmp_path / "b" / "detections.csv",
                                         tmp_path / "a" / "detections.csv"]})
    job = EmbedJob(str(model), str(tmp_path / "out"))
    res = embed_videos(table, job)
    assert res["described"] == 2 and res["errors"] == 1 and res["detections"] == 10 + 12
    a = pd.read_parquet(tmp_path / "out" / "videos" / "a.parquet")
    assert len(a) == 10 and len(a["embedding"].iloc[0]) == 32
    assert pd.read_parquet(tmp_path / "out" / "video_errors.parquet")["name"].tolist() == ["broken"]
    again = embed_videos(table, job)
    assert again["skipped_done"] == 2 and again["described"] == 0 and again["errors"] == 1


def test_ray_verification_gives_the_counts_of_the_local_loop(tmp_path):
    """The candidate pairs of a small collection verified on Ray (several feature chunks, several pair chunks)
    and in process: the same verified match counts, and a broken image is a typed error either way."""
    pytest.importorskip("ray")
    from reid_hub.discovery.local_evidence import verify_pairs_here
    from reid_hub.errors import DataError
    from reid_hub.scale.verification import ray_verifier

    folder = make_identity_images(tmp_path / "toy", "toyfox", 4, 4, seed=7)
    records = rdata.load_sources([folder]).to_dict("records")
    i, j = np.triu_indices(len(records), 1)
    here = verify_pairs_here(records, i, j, "sift", progress=False)
    on_ray = ray_verifier(cpus=2, rows_per_task=5, pairs_per_task=17)(records, i, j, "sift", False)
    assert np.array_equal(here, on_ray) and here.max() > 0
    records[3] = {**records[3], "image": str(tmp_path / "missing.png")}
    with pytest.raises(DataError):
        verify_pairs_here(records, i, j, "sift", progress=False)
    with pytest.raises(DataError):
        ray_verifier(cpus=2, rows_per_task=5)(records, i, j, "sift", False)
