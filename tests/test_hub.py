import numpy as np
import pytest

from reid_hub import DEFAULT_MODEL, from_pretrained
from reid_hub.errors import OfflineError, UnknownModelError
from reid_hub.models.loading import release_names, resolve
from reid_hub.resources import model_cards_dir


def test_unknown_names_and_offline_hub_ids_give_clear_errors(monkeypatch, tmp_path):
    with pytest.raises(UnknownModelError):
        resolve("not/a/hub/id/at/all")
    with pytest.raises(UnknownModelError):
        from_pretrained("no-such-release")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match="hub"):
        from_pretrained("conservationxlabs/miewid-msv2")


def test_default_release_loads_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if DEFAULT_MODEL not in release_names():
        pytest.fail(f"the default model {DEFAULT_MODEL} is not released in {model_cards_dir()}")
    folder = model_cards_dir() / DEFAULT_MODEL
    assert (folder / "model.safetensors").stat().st_size <= 20 * 1024 * 1024
    card = (folder / "README.md").read_text()
    assert "top1" in card or "top-1" in card
    model = from_pretrained(DEFAULT_MODEL)
    e = model.embed(np.zeros((64, 64, 3), np.uint8))
    assert e.shape == (1, model.embedding_dim) and abs(float(np.linalg.norm(e)) - 1) < 1e-4


def test_default_release_separates_real_identities(shared_data, monkeypatch):
    """Same-identity pairs score higher than different-identity pairs on real photos of every species."""
    import pandas as pd

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = from_pretrained(DEFAULT_MODEL)
    for meta in sorted(shared_data.glob("*/metadata.csv")):
        df = pd.read_csv(meta)
        ids = df["identity"].value_counts()
        chosen = ids[ids >= 3].index[:4]
        sub = df[df["identity"].isin(chosen)].groupby("identity").head(3)
        e = model.embed([str(meta.parent / p) for p in sub["path"]])
        same = sub["identity"].to_numpy()[:, None] == sub["identity"].to_numpy()[None, :]
        s = e @ e.T
        off = ~np.eye(len(sub), dtype=bool)
        assert s[same & off].mean() > s[~same].mean(), meta.parent.name
