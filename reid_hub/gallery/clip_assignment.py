"""Clusters of a clip -> persistent individuals of a gallery (one-to-one, open-set), with sightings."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from ..errors import GalleryError
from .identification import gallery_ranker
from .recalibration import calibrate_open_set
from .store import Gallery, vec_hash

#: images shortlisted per cluster prototype (an individual outside them scores -inf: it cannot be matched)
CLIP_SHORTLIST = 1000

log = logging.getLogger(__name__)


@dataclass
class ClusterAssignment:
    """Where one cluster of a clip went: a persistent individual, and whether it was new."""

    cluster: str
    individual_id: str
    display_name: str
    score: Optional[float]
    is_new: bool
    images_added: int


def assign_clip(gallery: Gallery, clusters: dict[str, np.ndarray], video: str,
                frames: Optional[dict[str, Sequence[int]]] = None, boxes: Optional[dict[str, Sequence[Any]]] = None,
                species: str = "", threshold: Optional[float] = None, enroll: bool = True,
                encounter: Optional[str] = None) -> list[ClusterAssignment]:
    """Match the clusters of one clip to persistent individuals and record the sightings.

    `encounter` names clips that show the same animals at the same time (the synchronized cameras of
    one recording): a clip's clusters are first matched one-to-one to the individuals already sighted in
    its encounter, closed-set (no threshold: they are the same animals), by the mean similarity of the
    cluster's prototype to those individuals' images from the encounter; only clusters left over go on
    to the open-set matching below, against the other individuals.

    Each cluster's prototype (mean of its unit embeddings) is scored against the individuals of its
    CLIP_SHORTLIST nearest images in the gallery's index (best image score; the others cannot match);
    clusters and individuals are matched one-to-one by the Hungarian algorithm; a match scoring below the open-set threshold does not count, and every unmatched
    cluster becomes a new individual. A gallery without a threshold is calibrated first (and after
    a first clip has given it two individuals). With `enroll`, the cluster's embeddings are added to its
    individual (skipping ones already there), so re-running the same clip changes nothing.
    """
    from scipy.optimize import linear_sum_assignment

    if not clusters:
        raise GalleryError("no clusters to assign")
    if threshold is None and gallery.threshold is None and len(gallery) > 0:
        try:
            log.info("the gallery had no open-set threshold; calibrated: %s", calibrate_open_set(gallery))
        except GalleryError as exc:
            raise GalleryError(f"the gallery has no open-set threshold and cannot be calibrated yet ({exc}): "
                               "pass threshold=") from exc
    thr = gallery.threshold if threshold is None else threshold
    keys = list(clusters)
    embs = {k: gallery.check_embeddings(clusters[k]) for k in keys}
    protos = np.stack([e.mean(axis=0) / np.linalg.norm(e.mean(axis=0)) for e in embs.values()])
    inds = gallery.individuals()
    score = np.full((len(keys), len(inds)), -np.inf)
    col = {d["id"]: j for j, d in enumerate(inds)}
    if inds and len(gallery):
        # each individual's best image, from the ranker's shortlist of each prototype through the gallery's index
        _, _, owners = gallery.owners()
        cands = gallery_ranker(gallery)[0].shortlist(protos, min(len(gallery), CLIP_SHORTLIST))
        for r, plan in enumerate(cands.best_per_owner(len(keys), len(owners))):
            for o, rows in plan:
                score[r, col[owners[o][0]]] = cands.global_score[rows[0]]
    assigned: dict[int, tuple[int, float]] = {}
    taken: set[int] = set()
    if encounter and inds:
        members: dict[int, list[np.ndarray]] = {}
        for iid, vec in gallery.encounter_embeddings(encounter, exclude_video=video):
            members.setdefault(col[iid], []).append(vec)
        cols = sorted(members)
        if cols:
            enc = np.stack([(protos @ np.stack(members[j]).T).mean(axis=1) for j in cols], axis=1)
            for r, c in zip(*linear_sum_assignment(-enc)):
                assigned[r] = (cols[c], float(enc[r, c]))
            taken = set(cols)
    rest = [r for r in range(len(keys)) if r not in assigned]
    free = [j for j in range(len(inds)) if j not in taken]
    sub = score[np.ix_(rest, free)] if rest and free else np.zeros((0, 0))
    if sub.size and np.isfinite(sub).any():
        cost = np.where(np.isfinite(sub), -sub, 1e6)
        for r, c in zip(*linear_sum_assignment(cost)):
            if np.isfinite(sub[r, c]) and sub[r, c] >= thr:
                assigned[rest[r]] = (free[c], float(sub[r, c]))
    out = []
    for r, key in enumerate(keys):
        if r in assigned:
            c, sc = assigned[r]
            iid, name, new = inds[c]["id"], inds[c]["display_name"], False
        else:
            sc = float(score[r].max()) if np.isfinite(score[r]).any() else None
            name = f"{video}:{key}"
            existing = gallery.individual_named(name)
            iid = existing if existing else gallery.add_individual(name, species=species)
            new = existing is None
        added = 0
        if enroll:
            have = gallery.image_hashes(iid)
            fresh = [i for i, e in enumerate(embs[key]) if vec_hash(e) not in have]
            if fresh:
                fr = [frames[key][i] for i in fresh] if frames and key in frames else None
                bx = [boxes[key][i] for i in fresh] if boxes and key in boxes else None
                gallery.enroll(iid, embs[key][fresh], sources=[f"{video}#{key}"] * len(fresh), boxes=bx, video=video,
                               frames=fr)
                added = len(fresh)
        gallery.record_sighting(iid, video, (frames or {}).get(key, []), (boxes or {}).get(key, []), sc, encounter)
        out.append(ClusterAssignment(key, iid, name, sc, new, added))
    if enroll and gallery.threshold is None and len(gallery.individuals()) >= 2:
        log.info("open-set threshold calibrated after the first clip: %s", calibrate_open_set(gallery))
    return out


__all__ = ["ClusterAssignment", "assign_clip"]
