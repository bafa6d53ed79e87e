"""Re-ID data: metadata.csv folders, the wildlife-datasets layout and Hugging Face datasets,
identity-disjoint splits, training datasets/samplers, and Parquet export of embeddings.

Every loader returns one table (pandas DataFrame) with the columns of `COLUMNS` (then those of
`CONTEXT_COLUMNS` that the source has, such as camera):
`image` is a file path or the encoded image bytes, `bbox` is (x, y, w, h) or None, and
`label` is the species-qualified identity ("species/identity") used as the class name.
"""
from __future__ import annotations

import ast
import json
import logging
import random
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, Sampler

from .atomic import atomic_path
from ..errors import DataError
from .imaging import PreprocessConfig, crop_box, load_image, resize_for_model, to_tensor

log = logging.getLogger(__name__)

COLUMNS = ("image_id", "image", "identity", "species", "bbox", "dataset", "label")
#: optional columns kept after COLUMNS when a source has them (e.g. for cross-camera evaluation)
CONTEXT_COLUMNS = ("camera", "sequence", "frame", "video", "viewpoint", "date")
#: identity values that mean "not known" in wildlife-datasets and similar tables
UNKNOWN_IDENTITIES = {"unknown", "", "nan", "none", "-1"}


def parse_bbox(value: Any) -> Optional[tuple[float, float, float, float]]:
    """A box as (x, y, w, h) from a list, JSON or "x,y,w,h" text; None for an empty cell."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            value = json.loads(text) if text.startswith("[") else [float(v) for v in text.replace(";", ",").split(",")]
        except (ValueError, json.JSONDecodeError):
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError) as exc:
                raise DataError(f"bbox {text!r} is not 'x,y,w,h'") from exc
    vals = [float(v) for v in value]
    if len(vals) != 4 or vals[2] <= 0 or vals[3] <= 0:
        raise DataError(f"bbox must be x,y,w,h with positive size, got {value!r}")
    return (vals[0], vals[1], vals[2], vals[3])


def _finish(df: pd.DataFrame, dataset: str) -> pd.DataFrame:
    df = df.copy()
    df["identity"] = df["identity"].astype(str)
    known = ~df["identity"].str.strip().str.lower().isin(UNKNOWN_IDENTITIES)
    if (~known).any():
        log.info("%s: dropping %d images of unknown identity", dataset, int((~known).sum()))
    df = df[known]
    if df.empty:
        raise DataError(f"{dataset}: no images with a known identity")
    df["species"] = df["species"].astype(str)
    df["dataset"] = dataset
    df["label"] = df["species"] + "/" + df["identity"]
    if "image_id" not in df or df["image_id"].isna().any():
        df["image_id"] = [f"{dataset}/{i}" for i in range(len(df))]
    df["image_id"] = df["image_id"].astype(str)
    if df["image_id"].duplicated().any():
        dup = df.loc[df["image_id"].duplicated(), "image_id"].iloc[0]
        raise DataError(f"{dataset}: image_id {dup!r} appears more than once")
    if "bbox" not in df:
        df["bbox"] = None
    df["bbox"] = [parse_bbox(b) for b in df["bbox"]]
    extra = [c for c in CONTEXT_COLUMNS if c in df.columns]
    for c in extra:
        df[c] = df[c].astype(str)
    return df[list(COLUMNS) + extra].reset_index(drop=True)


def load_metadata_folder(folder: str | Path, species: Optional[str] = None) -> pd.DataFrame:
    """Load a folder with metadata.csv (image_id, path, identity, species[, bbox]).

    `species` fills the column when the table has none (default: the folder name)."""
    folder = Path(folder)
    csv = folder / "metadata.csv" if folder.is_dir() else folder
    root = csv.parent
    if not csv.is_file():
        raise DataError(f"no metadata.csv in {folder}")
    try:
        df = pd.read_csv(csv, dtype={"identity": str, "image_id": str})
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{csv} is not a readable CSV: {exc}") from exc
    missing = [c for c in ("path", "identity") if c not in df.columns]
    if missing:
        raise DataError(f"{csv} lacks the column(s) {missing}; it needs path and identity")
    if "species" not in df.columns:
        df["species"] = species or root.name
    df["image"] = [str(root / p) for p in df["path"].astype(str)]
    return _finish(df, root.name)


def load_wildlife_dataframe(df: pd.DataFrame, root: str | Path, name: Optional[str] = None,
                            species: Optional[str] = None) -> pd.DataFrame:
    """Load a wildlife-datasets metadata table (`dataset.df`: image_id, identity, path[, bbox, species])
    whose paths are relative to `root`."""
    missing = [c for c in ("path", "identity") if c not in df.columns]
    if missing:
        raise DataError(f"wildlife-datasets table lacks {missing}")
    root = Path(root)
    out = df.copy()
    if "species" not in out.columns:
        out["species"] = species or (name or root.name)
    out["image"] = [str(root / p) for p in out["path"].astype(str)]
    return _finish(out, name or root.name)


def load_wildlife_dataset(dataset: Any) -> pd.DataFrame:
    """Load a `wildlife_datasets.datasets.*` object (it has `.df` and `.root`)."""
    if not hasattr(dataset, "df") or not hasattr(dataset, "root"):
        raise DataError("expected a wildlife-datasets dataset object with .df and .root")
    return load_wildlife_dataframe(dataset.df, dataset.root, name=type(dataset).__name__)


def load_hf_dataset(ds: Any, image_column: str = "image", identity_column: str = "identity",
                    species_column: Optional[str] = "species", name: str = "hf") -> pd.DataFrame:
    """Load a Hugging Face `datasets.Dataset` with image / identity / species columns."""
    cols = getattr(ds, "column_names", None)
    if cols is None:
        raise DataError("expected a datasets.Dataset")
    for c in (image_column, identity_column):
        if c not in cols:
            raise DataError(f"dataset has no column {c!r} (columns: {cols})")
    try:
        from datasets import Image as HFImage

        ds = ds.cast_column(image_column, HFImage(decode=False))
    except (ImportError, ValueError, TypeError):
        pass
    images = []
    for item in ds[image_column]:
        if isinstance(item, dict):
            images.append(item.get("bytes") or item.get("path"))
        else:
            images.append(item)
    table = pd.DataFrame({
        "image": images,
        "identity": [str(v) for v in ds[identity_column]],
        "species": ds[species_column] if species_column and species_column in cols else name,
    })
    for extra in ("image_id", "bbox"):
        if extra in cols:
            table[extra] = ds[extra]
    return _finish(table, name)


def load_any(source: str | Path) -> pd.DataFrame:
    """Load a data source by its layout: metadata.csv folder, wildlife-datasets export
    (annotations.csv beside the images), a Parquet/Arrow file or saved `datasets` folder."""
    path = Path(source)
    if (path / "metadata.csv").is_file() or path.name == "metadata.csv":
        return load_metadata_folder(path)
    if (path / "annotations.csv").is_file():
        return load_wildlife_dataframe(pd.read_csv(path / "annotations.csv"), path)
    if path.suffix == ".parquet" or (path / "dataset_info.json").is_file():
        import datasets

        ds = (datasets.Dataset.from_parquet(str(path)) if path.suffix == ".parquet"
              else datasets.load_from_disk(str(path)))
        return load_hf_dataset(ds, name=path.stem)
    raise DataError(f"{source}: not a metadata.csv folder, wildlife-datasets export or Parquet dataset")


def load_sources(sources: Sequence[str | Path]) -> pd.DataFrame:
    """Concatenate several data sources into one table (image ids must stay unique)."""
    if not sources:
        raise DataError("no data sources given")
    tables = [load_any(s) for s in sources]
    df = pd.concat(tables, ignore_index=True)
    if df["image_id"].duplicated().any():
        raise DataError("two sources share image ids; give each dataset folder a distinct name")
    return df


def split_by_identity(df: pd.DataFrame, unseen_fraction: float = 0.3, seed: int = 0) -> pd.DataFrame:
    """Mark each image 'train' or 'unseen' so that identities never straddle the two, per species.

    Unseen identities are drawn among those with at least two images (so each can be a query),
    with a seed of their own per species (seed, species name), so the split of one species does not depend
    on which other species are loaded; identities with one image stay in training. `unseen_fraction` 1 marks every
    image unseen (zero-shot evaluation of data no model was trained on).
    """
    if not 0.0 <= unseen_fraction <= 1.0:
        raise DataError("unseen_fraction must be in [0, 1]")
    if unseen_fraction == 1.0:
        return df.assign(split="unseen")
    split = pd.Series("train", index=df.index)
    for species, part in df.groupby("species", sort=True):
        rng = random.Random(f"{seed}/{species}")  # per species: adding a dataset never reshuffles the others
        counts = part.groupby("label").size()
        eligible = sorted(counts[counts >= 2].index)
        n_unseen = int(round(unseen_fraction * counts.size))
        n_unseen = min(n_unseen, len(eligible))
        chosen = set(rng.sample(eligible, n_unseen))
        split[part.index[part["label"].isin(chosen)]] = "unseen"
    out = df.copy()
    out["split"] = split
    return out


def apply_split(df: pd.DataFrame, split_csv: str | Path) -> pd.DataFrame:
    """Reuse a saved split (image_id, split) on a freshly loaded table."""
    saved = pd.read_csv(split_csv, dtype={"image_id": str})
    mapping = dict(zip(saved["image_id"], saved["split"]))
    out = df.copy()
    out["split"] = [mapping.get(i, "train") for i in out["image_id"]]
    return out


def read_sample(row: Any, pad: float = 0.0):
    """The RGB PIL image of one table row, cropped to its bbox when it has one."""
    img = load_image(row["image"])
    box = row["bbox"]
    return crop_box(img, box, pad) if box is not None else img


class ReIDImageDataset(Dataset):
    """Torch dataset of (image tensor, class index) pairs from a data table."""

    def __init__(self, df: pd.DataFrame, preprocess: PreprocessConfig, classes: Optional[Sequence[str]] = None,
                 augment: bool = False, seed: int = 0) -> None:
        self.df = df.reset_index(drop=True)
        self.cfg = preprocess
        self.classes = list(classes) if classes is not None else sorted(self.df["label"].unique())
        index = {c: i for i, c in enumerate(self.classes)}
        self.targets = [index.get(lbl, -1) for lbl in self.df["label"]]
        self.augment = train_augment(preprocess.size) if augment else None
        self.seed, self.epoch = int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        """Augmentations of item i are drawn from a seed of (seed, epoch, i): the same images whatever the
        number of loader workers or training processes."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.df)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = read_sample(self.df.iloc[i])
        if self.augment is None:
            return to_tensor(resize_for_model(img, self.cfg), self.cfg), self.targets[i]
        s = (self.seed * 1_000_003 + self.epoch) * 10_000_019 + i
        with torch.random.fork_rng(devices=[]):
            state = random.getstate()
            try:
                random.seed(s)
                torch.manual_seed(s)
                img = self.augment[1](resize_for_model(self.augment[0](img), self.cfg))
            finally:
                random.setstate(state)
        return to_tensor(img, self.cfg), self.targets[i]


def train_augment(size: int) -> tuple[Any, Any]:
    from torchvision import transforms as T

    class _Crop:  # a random sub-window that keeps the image's aspect (the model letterboxes after it)
        def __call__(self, img):
            if random.random() > 0.7:
                return img
            w, h = img.size
            s = random.uniform(0.7, 1.0)
            cw, ch = max(8, int(w * s)), max(8, int(h * s))
            x, y = random.randint(0, w - cw), random.randint(0, h - ch)
            return img.crop((x, y, x + cw, y + ch))

    after = T.Compose([
        T.RandomApply([T.ColorJitter(0.3, 0.3, 0.2, 0.03)], p=0.8),
        T.RandomGrayscale(p=0.1),
        T.RandomApply([T.RandomAffine(degrees=10, translate=(0.05, 0.05))], p=0.3),
    ])
    return _Crop(), after


class ClassBalancedSampler(Sampler[int]):
    """Draws P classes x K images per batch step so that rare identities are seen as often as common ones."""

    def __init__(self, targets: Sequence[int], num_samples: int, images_per_class: int = 4, seed: int = 0) -> None:
        self.by_class: dict[int, list[int]] = {}
        for i, t in enumerate(targets):
            self.by_class.setdefault(int(t), []).append(i)
        self.num_samples, self.k, self.seed, self.epoch = int(num_samples), int(images_per_class), seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        rng = random.Random(self.seed * 100003 + self.epoch)
        classes = list(self.by_class)
        out: list[int] = []
        while len(out) < self.num_samples:
            rng.shuffle(classes)
            for c in classes:
                idx = self.by_class[c]
                out.extend(rng.choices(idx, k=self.k) if len(idx) < self.k else rng.sample(idx, self.k))
                if len(out) >= self.num_samples:
                    break
        return iter(out[: self.num_samples])


def class_counts(labels: Iterable[str], classes: Sequence[str]) -> list[int]:
    """Image count per class, in the order of `classes`."""
    c = Counter(labels)
    return [max(1, c.get(k, 0)) for k in classes]


def write_embeddings_parquet(path: str | Path, df: pd.DataFrame, embeddings: np.ndarray,
                             model_name: str, model_fingerprint: str) -> Path:
    """Atomically write a Parquet table (image_id, identity, species, label, bbox, embedding list)
    that `datasets.Dataset.from_parquet` loads; model name and fingerprint go in its metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if len(df) != len(embeddings):
        raise DataError(f"{len(df)} rows but {len(embeddings)} embeddings")
    emb = np.asarray(embeddings, dtype=np.float32)
    table = pa.table({
        "image_id": df["image_id"].astype(str).tolist(),
        "image": [v if isinstance(v, str) else None for v in df["image"]],
        "identity": df["identity"].astype(str).tolist(),
        "species": df["species"].astype(str).tolist(),
        "label": df["label"].astype(str).tolist(),
        "bbox": [list(b) if b is not None else None for b in df["bbox"]],
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), emb.shape[1]),
    })
    meta = {b"reid_hub_model": model_name.encode(), b"reid_hub_fingerprint": model_fingerprint.encode(),
            b"reid_hub_dim": str(emb.shape[1]).encode()}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
    path = Path(path)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def read_embeddings_parquet(path: str | Path) -> tuple[pd.DataFrame, np.ndarray, dict[str, str]]:
    """Read a table written by `write_embeddings_parquet`: (rows, embeddings, model metadata)."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from exc
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items() if k.startswith(b"reid_hub")}
    if "embedding" not in table.column_names:
        raise DataError(f"{path} has no embedding column")
    emb = np.stack(table.column("embedding").to_numpy(zero_copy_only=False)).astype(np.float32)
    rows = table.drop(["embedding"]).to_pandas()
    return rows, emb, meta
