"""Scorers for evaluation: a table of images -> an (n, n) similarity matrix (higher = more similar).

Global embeddings (cosine), local features (verified matches between every pair), and the
coarse-to-fine fusion (a global shortlist re-scored by local matches, calibrated to P(same))."""
from __future__ import annotations

import logging
import random
import time
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..data import tables as rdata
from ..errors import DataError
from ..models.model import ReIDModel
from ..models.table_embedding import embed_table
from ..scoring.calibration import expected_calibration_error
from ..scoring.fusion import FusionCalibration, fit_fusion
from ..scoring.matchers import LocalFeatures, LocalMatcher, create_matcher, default_shortlist
from ..scoring.ranker import Ranker, labelled_pairs, matrix_search

log = logging.getLogger(__name__)

Scorer = Callable[[pd.DataFrame], np.ndarray]


def embedding_scorer(model: ReIDModel, raw_features: bool = False, batch_size: int = 16) -> Scorer:
    """A scorer that embeds a table with `model` and returns cosine similarities."""
    def score(part: pd.DataFrame) -> np.ndarray:
        e = embed_table(model, part, batch_size=batch_size, raw_features=raw_features)
        return e @ e.T
    return score


def _row_key(row: Any) -> str:
    img = row.image
    ident = img if isinstance(img, str) else f"bytes:{hash(bytes(img))}"
    return f"{ident}|{row.bbox}"


class TableFeatures:
    """Per-image memo of embeddings and local features, keyed by image and box, shared by scorers."""

    def __init__(self, matcher: LocalMatcher, model: Optional[ReIDModel] = None, batch_size: int = 16) -> None:
        self.matcher, self.model, self.batch_size = matcher, model, batch_size
        self._local: dict[str, LocalFeatures] = {}
        self._emb: dict[str, np.ndarray] = {}
        self._pairs: dict[tuple[str, str], float] = {}
        self.cost = {"extracted": 0, "extract_s": 0.0, "matched": 0, "match_s": 0.0}

    def local(self, df: pd.DataFrame, progress: bool = False) -> list[LocalFeatures]:
        rows = list(df.itertuples(index=False))
        for r in tqdm(rows, disable=not progress, desc=f"{self.matcher.name} extract", unit="img"):
            k = _row_key(r)
            if k not in self._local:
                img = rdata.read_sample(r._asdict())
                t = time.perf_counter()
                self._local[k] = self.matcher.extract(img)
                self.cost["extract_s"] += time.perf_counter() - t
                self.cost["extracted"] += 1
        return [self._local[_row_key(r)] for r in rows]

    def embeddings(self, df: pd.DataFrame) -> np.ndarray:
        if self.model is None:
            raise DataError("these table features have no embedding model")
        rows = list(df.itertuples(index=False))
        missing = [i for i, r in enumerate(rows) if _row_key(r) not in self._emb]
        if missing:
            e = embed_table(self.model, df.iloc[missing], batch_size=self.batch_size)
            for i, v in zip(missing, e):
                self._emb[_row_key(rows[i])] = v
        return np.stack([self._emb[_row_key(r)] for r in rows])

    def pair_scores(self, df: pd.DataFrame, qi: np.ndarray, ci: np.ndarray) -> np.ndarray:
        """Verified-match scores of rows qi[k] vs ci[k] (symmetric, memoised)."""
        feats = self.local(df)
        keys = [_row_key(r) for r in df.itertuples(index=False)]
        out = np.zeros(len(qi), np.float64)
        for k, (q, c) in enumerate(zip(qi.tolist(), ci.tolist())):
            key = (keys[q], keys[c]) if keys[q] <= keys[c] else (keys[c], keys[q])
            got = self._pairs.get(key)
            if got is None:
                t = time.perf_counter()
                got = self._pairs[key] = self.matcher.match(feats[q], feats[c]).score
                self.cost["match_s"] += time.perf_counter() - t
                self.cost["matched"] += 1
            out[k] = got
        return out


def local_scorer(matcher: LocalMatcher | str = "sift", progress: bool = False) -> Scorer:
    """Every pair scored by verified local matches (the hand-crafted SIFT baseline when `matcher` is sift)."""
    feats = TableFeatures(create_matcher(matcher) if isinstance(matcher, str) else matcher)

    def score(part: pd.DataFrame) -> np.ndarray:
        n = len(part)
        qi, ci = np.triu_indices(n, 1)
        s = feats.pair_scores(part, qi, ci) if n > 1 else np.zeros(0)
        sim = np.zeros((n, n), np.float32)
        sim[qi, ci] = sim[ci, qi] = s
        return sim
    return score


class FusedScorer:
    """Coarse-to-fine: each query's top-`depth` global candidates (default: the matcher's depth for a gallery
    of this size, see matching.default_shortlist) re-scored by P(same) fused from the
    calibrated global and local scores; other candidates keep their global order below them.

    Calibration per species from `calib_df` (training identities) when it has at least two identities of
    the species, else cross-fitted on the evaluated table itself: its identities are split in two seeded
    halves (one identity per fold when there are only three) and each fold's queries use the calibration
    fitted on the other folds' pairs (so no query is scored by a calibration that saw its own identity). `output` "local" or "global" ranks the shortlist
    by that calibrated probability alone (for comparisons), "fused" by the fusion."""

    def __init__(self, model: ReIDModel, matcher: LocalMatcher | str = "sift", calib_df: Optional[pd.DataFrame] = None,
                 depth: Optional[int] = None, kind: str = "isotonic", cross_column: Optional[str] = None,
                 output: str = "fused", seed: int = 0, features: Optional[TableFeatures] = None) -> None:
        self.features = features or TableFeatures(create_matcher(matcher) if isinstance(matcher, str) else matcher,
                                                  model)
        self.calib_df, self.depth, self.kind, self.cross_column = calib_df, depth, kind, cross_column
        self.output, self.seed = output, seed
        self.reports: dict[str, dict[str, Any]] = {}
        self.last_report: Optional[dict[str, Any]] = None

    def _depth(self, n: int) -> int:
        """The shortlist depth: fixed when given, else the matcher's default for a gallery of n images."""
        return self.depth if self.depth is not None else default_shortlist(self.features.matcher.name, n - 1)

    def _groups(self, part: pd.DataFrame) -> Optional[np.ndarray]:
        c = self.cross_column
        if not c or c not in part or part[c].isna().all():
            return None
        return part[c].astype(str).to_numpy()

    def _fit(self, part: pd.DataFrame) -> FusionCalibration:
        sim = self.features.embeddings(part)
        sim = sim @ sim.T
        groups = self._groups(part)
        pairs = labelled_pairs(sim, part["label"].to_numpy(),
                               lambda q, c: self.features.pair_scores(part, q, c), self._depth(len(part)), groups)
        return fit_fusion(pairs, part["label"].to_numpy(), self.kind, groups)

    def calibrations(self, part: pd.DataFrame) -> tuple[list[FusionCalibration], str]:
        """The calibration each row of `part` is scored with, and where it came from."""
        species = part["species"].iloc[0]
        if self.calib_df is not None:
            cpart = self.calib_df[self.calib_df["species"] == species].reset_index(drop=True)
            if cpart["label"].nunique() >= 2:
                cal = self._fit(cpart)
                return [cal] * len(part), "training identities"
        ids = sorted(part["label"].unique())
        if len(ids) < 3:
            raise DataError(f"{species}: cross-fitted calibration needs at least 3 identities, got {len(ids)}")
        random.Random(f"{self.seed}/{species}").shuffle(ids)
        n_folds = 2 if len(ids) >= 4 else len(ids)  # halves; leave one identity out when there are only 3
        fold_of = {lbl: k % n_folds for k, lbl in enumerate(ids)}
        fold = part["label"].map(fold_of).to_numpy()
        cals = {k: self._fit(part[fold != k].reset_index(drop=True)) for k in range(n_folds)}
        how = "halves" if n_folds == 2 else "leave-one-identity-out folds"
        return [cals[int(f)] for f in fold], f"cross-fitted {how} of the evaluated identities"

    def __call__(self, part: pd.DataFrame) -> np.ndarray:
        part = part.reset_index(drop=True)
        emb = self.features.embeddings(part)
        g = emb @ emb.T
        cals, source = self.calibrations(part)
        # the one ranker, over the table against itself: each row owns itself, so the probabilities are per pair
        ranker = Ranker(matrix_search(g, self._groups(part)), lambda ids: (ids >= 0, ids[ids >= 0]),
                        lambda q, c: self.features.pair_scores(part, q, c), lambda q, _: cals[q])
        cands = ranker.rank(np.arange(len(part)), self._depth(len(part)))
        qi, ci = cands.query, cands.image
        probs = {"global": cands.p_global, "local": cands.p_local, "fused": cands.p_fused}
        out = (g - 3.0).astype(np.float64)  # below every probability: unlisted candidates rank after the shortlist
        out[qi, ci] = probs[self.output]
        labels = part["label"].to_numpy()
        same = labels[qi] == labels[ci]
        self.last_report = {"calibrated_on": source, "shortlist": self._depth(len(part)), "matcher": self.features.matcher.name,
                            "pairs": int(len(qi)), "ece": {k: expected_calibration_error(v, same)
                                                          for k, v in probs.items()}}
        self.reports[str(part["species"].iloc[0])] = self.last_report
        return out


__all__ = ["Scorer", "embedding_scorer", "local_scorer", "TableFeatures", "FusedScorer"]
