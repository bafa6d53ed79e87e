"""Shared fixtures: tiny generated re-ID datasets and paths to the real shared data."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
# ONNX graphs, descriptors and trunk caches of the tests never land in the user's ~/.cache
os.environ.setdefault("REID_HUB_CACHE", tempfile.mkdtemp(prefix="reid-hub-test-cache-"))

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


def make_identity_images(folder: Path, species: str, identities: int, per_identity: int, seed: int = 0,
                         size: int = 48) -> Path:
    """A metadata.csv folder where each identity is a distinct random colour pattern, seen with noise and shifts."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["image_id,path,identity,species"]
    for i in range(identities):
        pattern = rng.integers(0, 256, size=(6, 6, 3)).astype(np.float32)
        base = np.asarray(Image.fromarray(pattern.astype(np.uint8)).resize((size, size), Image.NEAREST), np.float32)
        (folder / "images" / f"id{i}").mkdir(parents=True, exist_ok=True)
        for k in range(per_identity):
            shifted = np.roll(base, shift=(int(rng.integers(-3, 4)), int(rng.integers(-3, 4))), axis=(0, 1))
            img = np.clip(shifted + rng.normal(0, 12, shifted.shape), 0, 255).astype(np.uint8)
            rel = f"images/id{i}/{k}.png"
            Image.fromarray(img).save(folder / rel)
            rows.append(f"{species}/id{i}/{k},{rel},id{i},{species}")
    (folder / "metadata.csv").write_text("\n".join(rows) + "\n")
    return folder


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory) -> list[Path]:
    """Two generated species folders (6 and 5 identities, 6 images each)."""
    root = tmp_path_factory.mktemp("toy")
    return [make_identity_images(root / "toyfox", "toyfox", 6, 6, seed=1),
            make_identity_images(root / "toyowl", "toyowl", 5, 6, seed=2)]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "README.md").is_file():
        pytest.skip(f"real data not present at {SHARED_DATA} (a user's clone has no ../shared)")
    return SHARED_DATA
