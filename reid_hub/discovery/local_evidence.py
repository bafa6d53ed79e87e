"""Local verification of a collection's candidate pairs: verified keypoint matches between two images, turned into
P(same individual) without labels.

A global embedding that never saw a species places a lion's nose crop next to other lions' noses, not next to the
portrait it was cut from; verified local matches find such pairs. Per species, every pair is verified when the
species is small enough, else each image's nearest neighbours by embedding. The matches count is mapped to P(same)
by one logistic that does not depend on the species (its centre was chosen on the staged species, leave one
species out: benchmarks/discovery.py).
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
from scipy.special import expit
from tqdm.auto import tqdm

from ..data.atomic import atomic_path
from ..data.tables import read_sample
from ..errors import ConfigError, DataError
from ..scoring.matchers import LocalFeatures, create_matcher
from .collection import rows_by_species
from .graph import knn

log = logging.getLogger(__name__)

#: matcher names accepted for discovery, "none" meaning the global embedding alone
VERIFY_CHOICES = ("sift", "none")


@dataclass(frozen=True)
class VerifyConfig:
    """Which pairs are verified and how their verified matches become P(same).

    Per species, every pair is verified when there are at most `all_pairs_up_to` of them (300 images), else each
    image's `neighbours` nearest others by embedding (the candidate graph's pairs: about 20 per image, so 2,000
    images verify in under two minutes on 2 cores); P(same) = logistic((matches - centre) / width)."""

    matcher: str = "sift"
    all_pairs_up_to: int = 45_000
    neighbours: int = 20
    centre: float = 15.0
    width: float = 2.0

    def __post_init__(self) -> None:
        if self.matcher not in VERIFY_CHOICES:
            raise ConfigError(f"verification matcher must be one of {VERIFY_CHOICES}, got {self.matcher!r}")
        if self.width <= 0 or self.neighbours < 1:
            raise ConfigError("verification width and neighbours must be positive")

    @property
    def enabled(self) -> bool:
        return self.matcher != "none"

    def fingerprint(self) -> str:
        """What the verified counts depend on (the logistic does not: it is applied when read)."""
        keep = {"matcher": self.matcher, "all_pairs_up_to": self.all_pairs_up_to, "neighbours": self.neighbours}
        return json.dumps(keep, sort_keys=True)


@dataclass
class LocalEvidence:
    """Verified pairs (rows i < j) of a collection with their verified match counts."""

    i: np.ndarray
    j: np.ndarray
    matches: np.ndarray

    def __len__(self) -> int:
        return len(self.i)

    @classmethod
    def empty(cls) -> "LocalEvidence":
        z = np.zeros(0, np.int64)
        return cls(z, z, np.zeros(0, np.float32))

    def p_same(self, config: VerifyConfig) -> np.ndarray:
        """P(same individual) of each verified pair from its match count alone."""
        return expit((np.asarray(self.matches, float) - config.centre) / config.width)

    def save(self, path: Path, keys: Sequence[str], config: VerifyConfig) -> None:
        """Keep the evidence beside a discovery's outputs (atomically), tied to its rows and settings."""
        with atomic_path(path) as tmp:
            np.savez(tmp, i=self.i, j=self.j, matches=self.matches, keys_digest=np.array(_digest(keys)),
                     fingerprint=np.array(config.fingerprint()))

    @classmethod
    def load(cls, path: Path, keys: Sequence[str], config: VerifyConfig) -> Optional["LocalEvidence"]:
        """The evidence kept at `path` when it was computed for these rows and settings, else None."""
        if not path.is_file():
            return None
        try:
            z = np.load(path, allow_pickle=False)
            if str(z["keys_digest"]) != _digest(keys) or str(z["fingerprint"]) != config.fingerprint():
                return None
            return cls(z["i"], z["j"], z["matches"])
        except (OSError, ValueError, KeyError) as exc:
            log.warning("ignoring unreadable verification cache %s: %s", path, exc)
            return None


def _digest(keys: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(map(str, keys)).encode()).hexdigest()


def verification_pairs(emb: np.ndarray, species_rows: Mapping[str, np.ndarray],
                       config: VerifyConfig) -> tuple[np.ndarray, np.ndarray]:
    """The pairs (i < j, global rows) to verify: within each species, all of them or the embedding neighbours."""
    out_i, out_j = [], []
    for rows in species_rows.values():
        n = len(rows)
        if n < 2:
            continue
        if n * (n - 1) // 2 <= config.all_pairs_up_to:
            a, b = np.triu_indices(n, 1)
        else:
            nn, _ = knn(emb[rows], config.neighbours)
            a = np.repeat(np.arange(n), nn.shape[1])
            b = nn.ravel()
            keep = b >= 0
            a, b = np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])
            key = np.unique(a * n + b)
            a, b = key // n, key % n
        out_i.append(rows[a])
        out_j.append(rows[b])
    if not out_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    i, j = np.concatenate(out_i).astype(np.int64), np.concatenate(out_j).astype(np.int64)
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    order = np.lexsort((hi, lo))
    return lo[order], hi[order]


#: verifies pairs (i, j) of records with a matcher: (records, i, j, matcher name, progress) -> verified matches
PairVerifier = Callable[[list[dict[str, Any]], np.ndarray, np.ndarray, str, bool], np.ndarray]


def verify_pairs_here(records: list[dict[str, Any]], i: np.ndarray, j: np.ndarray, matcher_name: str,
                      progress: bool = True) -> np.ndarray:
    """Verified match counts of pairs (i, j) of `records` in this process: each image's features extracted once,
    then every pair matched."""
    matcher = create_matcher(matcher_name)
    feats = {r: extract_features(matcher, records, r) for r in tqdm(np.unique(np.concatenate([i, j])).tolist(),
                                                                    desc="local features", disable=not progress,
                                                                    unit="img")}
    matches = np.zeros(len(i), np.float32)
    for e in tqdm(range(len(i)), desc="verify pairs", disable=not progress, unit="pair", mininterval=2):
        matches[e] = float(matcher.match(feats[int(i[e])], feats[int(j[e])]).inliers.sum())
    return matches


def extract_features(matcher: Any, records: Sequence[dict[str, Any]], r: int) -> LocalFeatures:
    """The local features of row `r` (descriptors in float16: half the memory; matching works in float32)."""
    try:
        f = matcher.extract(read_sample(records[r]))
    except (OSError, ValueError) as exc:
        raise DataError(f"row {r + 1}: cannot read {records[r].get('image')!r}: {exc}") from exc
    f.descriptors = f.descriptors.astype(np.float16)
    return f


def verify_collection(table: pd.DataFrame, emb: np.ndarray, species_rows: Mapping[str, np.ndarray],
                      config: VerifyConfig, progress: bool = True,
                      verifier: Optional[PairVerifier] = None) -> LocalEvidence:
    """Verify a collection's candidate pairs (rows of `table`, images read with their boxes), here or with
    `verifier` (e.g. on Ray: `scale.verification.ray_verifier`)."""
    if not config.enabled:
        return LocalEvidence.empty()
    i, j = verification_pairs(emb, species_rows, config)
    if not len(i):
        return LocalEvidence.empty()
    matches = (verifier or verify_pairs_here)(table.to_dict("records"), i, j, config.matcher, progress)
    log.info("verified %d pairs (%s)", len(i), config.matcher)
    return LocalEvidence(i, j, np.asarray(matches, np.float32))


def verify_cached(cache: Path, table: pd.DataFrame, emb: np.ndarray, keys: Sequence[str], config: VerifyConfig,
                  progress: bool = True, verifier: Optional[PairVerifier] = None) -> LocalEvidence:
    """The verified pairs of a collection (per species of `table`), read from `cache` when it holds them for these
    rows and settings, else verified and written there; empty when verification is off."""
    if not config.enabled:
        return LocalEvidence.empty()
    got = LocalEvidence.load(cache, keys, config)
    if got is None:
        got = verify_collection(table, emb, rows_by_species(table), config, progress, verifier)
        cache.parent.mkdir(parents=True, exist_ok=True)
        got.save(cache, keys, config)
    return got


__all__ = ["VerifyConfig", "LocalEvidence", "VERIFY_CHOICES", "PairVerifier", "verification_pairs",
           "verify_collection", "verify_pairs_here", "extract_features", "verify_cached"]
