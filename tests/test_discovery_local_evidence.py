"""Local verification in discovery: verified keypoint matches join images the global embedding keeps apart (a
crop of a photo and the photo), the verified pairs are chosen per species, and the evidence is cached safely."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw
from sklearn.metrics import adjusted_rand_score

from reid_hub.discovery import Discovery, DiscoveryConfig
from reid_hub.discovery.graph import GraphConfig
from reid_hub.discovery.local_evidence import LocalEvidence, VerifyConfig, verification_pairs, verify_collection
from reid_hub.errors import ConfigError


def pattern(seed: int, size: int = 320) -> Image.Image:
    """A photo-like image with many distinct corners: smooth random blobs (upsampled noise) and a few shapes."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray((rng.random((24, 24, 3)) * 255).astype(np.uint8))
    img = coarse.resize((size, size), Image.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x, y = rng.integers(0, size - 40, 2)
        w, h = rng.integers(10, 40, 2)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.polygon([(int(x), int(y)), (int(x + w), int(y + 5)), (int(x + w // 2), int(y + h))], fill=colour)
    return img


@pytest.fixture
def crops(tmp_path):
    """Five animals, each as a whole photo and a zoomed crop of it (as lion nose and portrait crops)."""
    rows = []
    for k in range(5):
        photo = pattern(k)
        photo.save(tmp_path / f"a{k}_whole.png")
        photo.crop((60, 60, 260, 260)).resize((280, 280), Image.BICUBIC).save(tmp_path / f"a{k}_crop.png")
        rows += [{"path": f"a{k}_whole.png", "identity": f"a{k}"}, {"path": f"a{k}_crop.png", "identity": f"a{k}"}]
    t = pd.DataFrame(rows)
    t["image"] = [str(tmp_path / p) for p in t["path"]]
    t["bbox"] = None
    t["species"] = "toy"
    return t


def test_verification_joins_crops_the_embedding_keeps_apart(crops):
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(len(crops), 16)).astype(np.float32)  # an embedding blind to the animals
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    y = crops["identity"].to_numpy()
    small = DiscoveryConfig(graph=GraphConfig(k=3, k1=3, k2=1))  # neighbourhoods sized for ten images
    blind = Discovery(crops, emb, small, keys=crops["path"].tolist())
    assert adjusted_rand_score(y, blind.labels) < 0.2
    cfg = VerifyConfig()
    local = verify_collection(crops, emb, {"toy": np.arange(len(crops))}, cfg, progress=False)
    assert len(local) == len(crops) * (len(crops) - 1) // 2  # a small collection: every pair verified
    p = local.p_same(cfg)
    same = y[local.i] == y[local.j]
    assert p[same].min() > 0.9 and p[~same].max() < 0.1
    seen = Discovery(crops, emb, small, keys=crops["path"].tolist(), local=local)
    assert adjusted_rand_score(y, seen.labels) == 1.0
    # the questions' P(same) comes from the same evidence: confirming a verified merge pays least
    qs = seen.questions(50)
    verified = [q.gain for q in qs if y[q.a] == y[q.b]]
    others = [q.gain for q in qs if y[q.a] != y[q.b]]
    assert others and (not verified or max(verified) < min(others))


def test_verified_pairs_stay_within_a_species_and_follow_the_embedding_when_many():
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(40, 8)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    rows = {"a": np.arange(0, 30), "b": np.arange(30, 40)}
    i, j = verification_pairs(emb, rows, VerifyConfig())
    assert len(i) == 30 * 29 // 2 + 10 * 9 // 2 and (i < j).all()
    assert not ((i < 30) & (j >= 30)).any()
    i, j = verification_pairs(emb, rows, VerifyConfig(all_pairs_up_to=100, neighbours=3))
    # species a has 435 pairs, over the limit: only each row's 3 nearest neighbours; species b (45) whole
    a = (i < 30)
    assert a.sum() <= 30 * 3 and (~a).sum() == 45
    sims = emb[:30] @ emb[:30].T
    np.fill_diagonal(sims, -np.inf)
    best = sims.argmax(axis=1)
    got = set(zip(i[a].tolist(), j[a].tolist()))
    assert all((min(r, b), max(r, b)) in got for r, b in enumerate(best.tolist()))


def test_evidence_cache_is_tied_to_rows_and_settings(tmp_path):
    ev = LocalEvidence(np.array([0, 1]), np.array([2, 2]), np.array([30.0, 3.0], np.float32))
    f = tmp_path / "verification.npz"
    cfg = VerifyConfig()
    ev.save(f, ["a", "b", "c"], cfg)
    back = LocalEvidence.load(f, ["a", "b", "c"], cfg)
    assert back is not None and back.matches.tolist() == [30.0, 3.0]
    assert LocalEvidence.load(f, ["a", "b", "x"], cfg) is None
    assert LocalEvidence.load(f, ["a", "b", "c"], VerifyConfig(neighbours=7)) is None
    # the logistic is read-time: another centre reuses the counts
    assert LocalEvidence.load(f, ["a", "b", "c"], VerifyConfig(centre=5.0)) is not None
    f.write_bytes(b"not an npz")
    assert LocalEvidence.load(f, ["a", "b", "c"], cfg) is None
    with pytest.raises(ConfigError):
        VerifyConfig(matcher="magic")
