"""On-disk cache of a frozen backbone trunk's feature maps: one clean and N augmented views per image.

Training with the first stages of a backbone frozen only ever needs their outputs, so each image goes
through the trunk once per view instead of once per epoch; every later epoch, candidate and
leave-one-species-out run reads the maps back. Files are keyed by the trunk (config, depth and
weights), the augmentation recipe and the seed, then by image, so runs over different subsets of the
same data share one cache. View 0 is the un-augmented input that `ReIDModel.embed` sees.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import random
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ..data.atomic import atomic_path
from ..data import tables as rdata
from ..data.imaging import resize_for_model, to_tensor
from ..errors import ConfigError
from ..models.model import ReIDModel
from ..resources import cache_dir

log = logging.getLogger(__name__)

#: bump when the augmentation recipe of data.train_augment changes (it is part of the cache key)
AUGMENT_VERSION = 1


def default_cache_root() -> Path:
    """`$REID_HUB_CACHE/trunk` (default ~/.cache/reid-hub/trunk)."""
    return cache_dir() / "trunk"


def trunk_fingerprint(model: ReIDModel, blocks: int) -> str:
    """Short hash of what the trunk computes: backbone, preprocessing, depth and the trunk's weights."""
    h = hashlib.sha256(json.dumps([model.config.backbone, model.config.preprocess.to_dict(), blocks]).encode())
    prefixes = ("conv_stem.", "bn1.") + tuple(f"blocks.{i}." for i in range(blocks))
    for k, v in sorted(model.backbone.state_dict().items()):
        if k.startswith(prefixes):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class TrunkCache:
    """Feature maps of `model.trunk(x, blocks)` for view 0 (clean) and `views` augmented views per row."""

    def __init__(self, model: ReIDModel, blocks: int, views: int = 4, seed: int = 0,
                 root: Optional[str | Path] = None) -> None:
        if blocks < 1 or blocks > model.num_blocks:
            raise ConfigError(f"frozen blocks must be in [1, {model.num_blocks}], got {blocks}")
        if views < 0:
            raise ConfigError("views must be >= 0")
        self.model, self.blocks, self.views, self.seed = model, int(blocks), int(views), int(seed)
        key = f"{trunk_fingerprint(model, blocks)}-v{views}-s{seed}-a{AUGMENT_VERSION}"
        self.folder = Path(root) if root else default_cache_root()
        self.folder = self.folder / key
        self.folder.mkdir(parents=True, exist_ok=True)
        self._augment = rdata.train_augment(model.config.preprocess.size)

    def path(self, row: pd.Series | dict) -> Path:
        """The file holding one row's views (keyed by image id, image path and box)."""
        ident = json.dumps([str(row["image_id"]), os.path.abspath(row["image"]) if isinstance(row["image"], str) else
                            hashlib.sha1(bytes(row["image"])).hexdigest(), row["bbox"]], default=str)
        return self.folder / f"{hashlib.sha1(ident.encode()).hexdigest()}.npy"

    def _inputs(self, row: dict, index: int) -> torch.Tensor:
        cfg = self.model.config.preprocess
        img = rdata.read_sample(row)
        out = [to_tensor(resize_for_model(img, cfg), cfg)]
        if self.views:
            # each (image, view) draws from its own seed, so a view never depends on the order of work
            with torch.random.fork_rng(devices=[]):
                state = random.getstate()
                try:
                    for v in range(self.views):
                        s = int(hashlib.sha1(f"{self.seed}/{row['image_id']}/{v}".encode()).hexdigest()[:8], 16)
                        random.seed(s)
                        torch.manual_seed(s)
                        aug = self._augment[1](resize_for_model(self._augment[0](img), cfg))
                        out.append(to_tensor(aug, cfg))
                finally:
                    random.setstate(state)
        return torch.stack(out)

    @torch.no_grad()  # not inference_mode: the model's parameters must stay usable for training afterwards
    def build(self, df: pd.DataFrame, batch_images: int = 8, progress: bool = True) -> list[Path]:
        """Compute the views of every row not cached yet; returns the file of each row, in order."""
        paths = [self.path(r) for r in df.to_dict("records")]
        todo = [i for i, p in enumerate(paths) if not p.is_file()]
        if todo:
            log.info("trunk cache %s: computing %d of %d images", self.folder.name, len(todo), len(paths))
        was_training = self.model.training
        if todo:
            self.model.eval().to(memory_format=torch.channels_last)
        records = df.to_dict("records")
        dev = self.model.device
        try:
            for start in tqdm(range(0, len(todo), batch_images), disable=not progress, desc="trunk cache",
                              unit="batch"):
                chunk = todo[start:start + batch_images]
                x = torch.cat([self._inputs(records[i], i) for i in chunk]).to(dev)
                # small forward batches: at 224 px and above, large CPU batches are memory-bound
                h = torch.cat([self.model.trunk(part.contiguous(memory_format=torch.channels_last), self.blocks)
                               for part in x.split(8)])
                h = h.float().cpu().numpy().astype(np.float16).reshape(len(chunk), 1 + self.views, *h.shape[1:])
                for i, arr in zip(chunk, h):
                    with atomic_path(paths[i]) as tmp:
                        np.save(tmp, np.ascontiguousarray(arr))
        finally:
            self.model.train(was_training)
        return paths


class CachedViewsDataset(Dataset):
    """(trunk feature map, class index) pairs from cached views: item i of epoch e reads view
    1 + (e + i) % views, so every view is used in turn and a resumed run reads the same ones."""

    def __init__(self, paths: list[Path], targets: list[int], views: int) -> None:
        if views < 1:
            raise ConfigError("training from cached views needs at least one augmented view")
        self.paths, self.targets, self.views, self.epoch = paths, list(targets), int(views), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        v = 1 + (self.epoch + i) % self.views
        arr = np.load(self.paths[i], mmap_mode="r")[v]
        return torch.from_numpy(np.asarray(arr, dtype=np.float32)), self.targets[i]


def load_clean_views(paths: list[Path]) -> torch.Tensor:
    """View 0 (the un-augmented input) of each cached file, stacked as float32."""
    return torch.from_numpy(np.stack([np.asarray(np.load(p, mmap_mode="r")[0], dtype=np.float32) for p in paths]))


__all__ = ["TrunkCache", "CachedViewsDataset", "load_clean_views", "trunk_fingerprint", "default_cache_root",
           "AUGMENT_VERSION"]
