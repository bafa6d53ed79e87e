"""Clusters of a clip -> persistent individuals of a gallery (one-to-one, open-set), with sightings."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from ..errors import GalleryError
from ..scoring.decisions import CLIP_ALPHA, clip_matches
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
    CLIP_SHORTLIST nearest images in the gallery's index (the cosine of the prototype and the individual's mean
    embedding; the others cannot match); clusters and individuals are matched one-to-one by the Hungarian
    algorithm; a match counts when the decision policy's clip rule keeps it (`scoring.decisions.clip_matches`:
    best of its row and column, and above the clip's own impostor scores) where the clip has at least 9
    known-different pairs to judge by, else when its best image reaches the open-set threshold; every other
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
    score = np.full((len(keys), len(inds)), -np.inf)  # best image of each individual
    whole = np.full((len(keys), len(inds)), -np.inf)  # the individual's mean embedding
    col = {d["id"]: j for j, d in enumerate(inds)}
    if inds and len(gallery):
        # the individuals of each prototype's shortlist through the gallery's index, scored by the similarity of
        # the cluster's prototype to the individual's (mean of its unit embeddings): whole animal against whole
        # animal, as the clip's clusters are
        image_ids, who, owners = gallery.owners()
        cands = gallery_ranker(gallery)[0].shortlist(protos, min(len(gallery), CLIP_SHORTLIST))
        listed = {o for plan in cands.best_per_owner(len(keys), len(owners)) for o, _ in plan}
        centre = _centres(gallery, image_ids, who, sorted(listed))
        for r, plan in enumerate(cands.best_per_owner(len(keys), len(owners))):
            for o, rows in plan:
                score[r, col[owners[o][0]]] = cands.global_score[rows[0]]
                whole[r, col[owners[o][0]]] = float(protos[r] @ centre[o])
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
    wsub = whole[np.ix_(rest, free)] if rest and free else np.zeros((0, 0))
    # the decision policy's clip rule where the clip shows enough known-different pairs to judge by, else the
    # gallery's open-set threshold on the best image (a clip of one animal against a gallery of one)
    by_rule = int(np.isfinite(wsub).sum()) - min(wsub.shape, default=0) >= round(1 / CLIP_ALPHA) - 1
    use = wsub if by_rule else sub
    if use.size and np.isfinite(use).any():
        cost = np.where(np.isfinite(use), -use, 1e6)
        made = [(int(r), int(c)) for r, c in zip(*linear_sum_assignment(cost)) if np.isfinite(use[r, c])]
        keeps = clip_matches(use, made) if by_rule else [(bool(sub[r, c] >= thr), 1.0) for r, c in made]
        for (r, c), (keep, _) in zip(made, keeps):
            if keep:
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


def _centres(gallery: Gallery, image_ids: np.ndarray, who: np.ndarray, owners: list[int]) -> dict[int, np.ndarray]:
    """Unit mean embedding of each of these individuals (by owner position) from its stored images."""
    want = np.isin(who, owners)
    vec = gallery.embeddings_by_id(image_ids[want].tolist())
    sums: dict[int, np.ndarray] = {}
    for i, o in zip(image_ids[want].tolist(), who[want].tolist()):
        v = vec.get(int(i))
        if v is not None:
            sums[o] = sums.get(o, 0.0) + v
    return {o: v / (np.linalg.norm(v) + 1e-12) for o, v in sums.items()}


__all__ = ["ClusterAssignment", "assign_clip"]
