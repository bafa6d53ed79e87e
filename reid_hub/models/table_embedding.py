"""Embeddings of a data table's images (each row read and cropped to its box): the one helper every stage uses to
embed a table."""
from __future__ import annotations

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..data import tables as rdata
from .model import ReIDModel


def embed_table(model: ReIDModel, df: pd.DataFrame, batch_size: int = 16, progress: bool = False,
                raw_features: bool = False) -> np.ndarray:
    """Embeddings of every row of a data table (cropped to its bbox), L2-normalized; `raw_features`: the pooled
    backbone features instead of the embedding."""
    out = []
    rows = list(df.itertuples(index=False))
    for start in tqdm(range(0, len(rows), batch_size), disable=not progress, desc="embed", unit="batch"):
        imgs = [rdata.read_sample(r._asdict()) for r in rows[start:start + batch_size]]
        out.append(model.describe(model.preprocess(imgs), raw_features=raw_features))
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 1), np.float32)


__all__ = ["embed_table"]
