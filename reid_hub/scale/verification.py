"""Verifying a collection's candidate pairs on Ray: each image's local features extracted once (rows in chunks,
in parallel), kept in Ray's object store, then the pairs matched in parallel chunks; the counts are the same as
the in-process loop (`discovery.local_evidence.verify_pairs_here`)."""
from __future__ import annotations

import logging
from typing import Any, Optional

import numpy as np
from tqdm.auto import tqdm

from ..discovery.local_evidence import PairVerifier, extract_features
from ..errors import ReidHubError
from ..scoring.matchers import create_matcher
from .embedding import start_ray

log = logging.getLogger(__name__)


def _extract(records: list[dict[str, Any]], rows: list[int], matcher_name: str) -> dict[int, Any]:
    matcher = create_matcher(matcher_name)
    return {r: extract_features(matcher, records, k) for k, r in enumerate(rows)}


def _match(matcher_name: str, i: np.ndarray, j: np.ndarray, *parts: dict[int, Any]) -> np.ndarray:
    matcher = create_matcher(matcher_name)
    feats: dict[int, Any] = {}
    for part in parts:
        feats.update(part)
    return np.array([float(matcher.match(feats[int(a)], feats[int(b)]).inliers.sum()) for a, b in zip(i, j)],
                    np.float32)


def ray_verifier(address: Optional[str] = None, cpus: Optional[int] = None, rows_per_task: int = 256,
                 pairs_per_task: int = 4000) -> PairVerifier:
    """A pair verifier that runs on Ray (`address`: a cluster, "auto" a running one, None a local Ray with `cpus`
    cores, one task per core)."""

    def verify(records: list[dict[str, Any]], i: np.ndarray, j: np.ndarray, matcher_name: str,
               progress: bool = True) -> np.ndarray:
        import ray

        start_ray(address, cpus)
        extract, match = ray.remote(num_cpus=1)(_extract), ray.remote(num_cpus=1)(_match)
        rows = np.unique(np.concatenate([i, j])).tolist()
        chunks = [rows[s:s + rows_per_task] for s in range(0, len(rows), rows_per_task)]
        refs = [extract.remote([records[r] for r in c], c, matcher_name) for c in chunks]
        where = {r: k for k, c in enumerate(chunks) for r in c}
        order = np.lexsort((j, i))
        tasks = []
        for s in range(0, len(order), pairs_per_task):
            e = order[s:s + pairs_per_task]
            need = sorted({where[int(r)] for r in np.concatenate([i[e], j[e]]).tolist()})
            tasks.append((e, match.remote(matcher_name, i[e], j[e], *[refs[k] for k in need])))
        out = np.zeros(len(i), np.float32)
        pending = {t: e for e, t in tasks}
        with tqdm(total=len(i), desc="verify pairs (ray)", disable=not progress, unit="pair") as bar:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                e = pending.pop(done[0])
                try:
                    out[e] = ray.get(done[0])
                except ray.exceptions.RayTaskError as exc:  # an unreadable image: the typed error, not Ray's
                    if isinstance(exc.cause, ReidHubError):
                        raise exc.cause from None
                    raise
                bar.update(len(e))
        log.info("verified %d pairs of %d images on Ray", len(i), len(rows))
        return out

    return verify


__all__ = ["ray_verifier"]
