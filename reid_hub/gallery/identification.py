"""Coarse-to-fine identification in a gallery: a FAISS shortlist, local-feature verification against the
features stored at enrollment, calibrated P(same individual), a decision band, and the evidence picture.

The ranking is `scoring.ranker.Ranker` over the gallery (`gallery_ranker`); what it reads of the gallery's
configuration is `store.GallerySettings`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
from PIL import Image

from ..errors import ConfigError, DataError, GalleryError
from ..scoring.decisions import (ACCEPT, NEW, REVIEW, Decision, DecisionPolicy, candidate_features,
                                 undecided)
from ..scoring.fusion import CalibrationSet, FusionCalibration
from ..scoring.matchers import MATCHERS, LocalFeatures, PairMatch, default_shortlist, draw_matches
from ..scoring.ranker import Ranker
from .store import Gallery

log = logging.getLogger(__name__)

def set_matcher(gallery: Gallery, name: str, species: Optional[str] = None) -> None:
    """Choose the matcher of a gallery (or of one species in it). Images enrolled before keep the features
    of their old matcher; they are verified only once re-enrolled (or `extract_missing` is run)."""
    if name not in MATCHERS:
        raise ConfigError(f"unknown matcher {name!r}; choose one of {sorted(MATCHERS)}")
    if species:
        gallery.update_settings(matcher_by_species={**gallery.settings.matcher_by_species, species: name})
    else:
        gallery.update_settings(matcher=name)


def extract_missing(gallery: Gallery, load: Any, progress: bool = False) -> int:
    """Extract and store local features for images that lack them under their species' matcher;
    `load(image_id)` returns the image's PIL crop (or None when it is not available). Returns the count."""
    from tqdm.auto import tqdm

    done = 0
    for image_id, _, name in tqdm(gallery.images_without_features(), disable=not progress, desc="local features",
                                  unit="img"):
        img = load(image_id)
        if img is None:
            continue
        gallery.features.put(image_id, name, gallery.features.matcher(name).extract(img))
        done += 1
    return done


def calibration_set(gallery: Gallery) -> Optional[CalibrationSet]:
    """The gallery's fitted P(same individual) calibrations (None before `recalibrate`)."""
    d = gallery.settings.fusion_calibration
    return CalibrationSet.from_dict(d) if d else None


def gallery_ranker(gallery: Gallery, allowed: Optional[np.ndarray] = None, image: Optional[Image.Image] = None,
                   calibration: Optional[CalibrationSet] = None) -> tuple[Ranker, dict[str, LocalFeatures]]:
    """The ranker of a gallery: its FAISS index (only the image ids `allowed`, e.g. one species' from
    `Gallery.species_pool`, when given) for the shortlist, its stored local features against `image`'s for
    verification (none without an image), `calibration` per candidate species. Also returns the query's local
    features by matcher (extracted on first use), for the evidence picture."""
    _, _, inds = gallery.owners()
    settings = gallery.settings
    qfeats: dict[str, LocalFeatures] = {}

    def search(q: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
        return gallery.nearest(q, depth, allowed)

    def local(_: np.ndarray, ids: np.ndarray) -> np.ndarray:
        out = np.full(len(ids), np.nan)
        _, who = gallery.owner_positions(ids)
        by_matcher: dict[str, list[int]] = {}
        for j, o in enumerate(who.tolist()):
            by_matcher.setdefault(settings.matcher_for(inds[o][2]), []).append(j)
        for name, js in by_matcher.items():
            stored = gallery.features.stored(ids[js], name)
            m = gallery.features.matcher(name)
            if name not in qfeats:
                qfeats[name] = m.extract(image)
            for j in js:
                f = stored.get(int(ids[j]))
                if f is not None:
                    out[j] = m.match(qfeats[name], f).score
        return out

    def calibration_of(_: int, o: Any) -> Optional[FusionCalibration]:
        try:
            return calibration.for_species(inds[int(o)][2]) if calibration is not None else None
        except DataError:  # a species without its own calibration and no fallback
            return None

    return Ranker(search, gallery.owner_positions, local if image is not None else None, calibration_of), qfeats


@dataclass
class VerifiedMatch:
    """One candidate individual after verification: its best image and the scores behind P(same)."""

    individual_id: str
    display_name: str
    species: str
    image_id: int
    global_score: float
    local_score: Optional[float]
    probability: Optional[float]
    p_global: Optional[float] = None
    p_local: Optional[float] = None
    matcher: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Identification:
    """The verified ranking for one query and what to do with it: accept, review or new. `p_new`: P(the animal is
    none of the gallery's individuals); `decision_precision`: the held-out precision of the automatic decision taken
    (None for review); `coverage`: the share of known / new animals the species' policy decides alone; `bands`: the
    policy behind it (thresholds, target, AUCs)."""

    matches: list[VerifiedMatch]
    decision: str
    probability: Optional[float]
    calibrated: bool
    bands: dict[str, float]
    shortlist: int
    query_features: dict[str, LocalFeatures] = field(default_factory=dict, repr=False)
    p_new: Optional[float] = None
    decision_precision: Optional[float] = None
    coverage: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"decision": self.decision, "probability": self.probability, "p_new": self.p_new,
                "decision_precision": self.decision_precision, "coverage": self.coverage,
                "calibrated": self.calibrated, "bands": self.bands, "shortlist": self.shortlist,
                "matches": [m.to_dict() for m in self.matches]}


def identify(gallery: Gallery, embedding: np.ndarray, image: Optional[Image.Image], species: Optional[str] = None,
             k: int = 5, shortlist: Optional[int] = None, accept: Optional[float] = None,
             auto_accept: Optional[bool] = None) -> Identification:
    """Rank the gallery's individuals for one query: the `shortlist` best images by embedding (only
    `species` when given, filtered inside the index), each verified by local matches against its stored
    features, scored P(same individual) with the gallery's calibration for its species, aggregated per
    individual (best image). The decision is the species' decision policy (scoring.decisions) on that candidate
    list: accept (only with `auto_accept`) or new where its held-out precision passes the gallery's target, else
    review; `accept` (else the gallery's setting) is an optional floor on P(same) for accepting. Before
    `recalibrate`, or for a species without a policy, everything is reviewed (new only when nothing of the
    species is enrolled). `image` None: global only."""
    if len(gallery) == 0:
        raise GalleryError(f"gallery {gallery.folder} is empty: enroll individuals first")
    q = gallery.check_embeddings(embedding)
    if len(q) != 1:
        raise DataError(f"identify takes one query embedding, got {len(q)}")
    settings = gallery.settings
    allowed, pool = gallery.species_pool(species)
    depth = int(shortlist or settings.shortlist or default_shortlist(settings.matcher_for(species), pool))
    if depth < 1:
        raise ConfigError("the shortlist needs at least one candidate")
    cal = calibration_set(gallery)
    ranker, qfeats = gallery_ranker(gallery, allowed, image, cal)
    cands = ranker.rank(q, min(pool, depth))
    _, _, inds = gallery.owners()
    prob = cands.probability

    def verified(r: int) -> VerifiedMatch:
        iid, dname, sp = inds[int(cands.owner[r])]
        loc = None if np.isnan(cands.local_score[r]) else float(cands.local_score[r])
        calibrated = not np.isnan(cands.p_global[r])
        return VerifiedMatch(iid, dname, sp, int(cands.image[r]), float(cands.global_score[r]), loc,
                             float(prob[r]) if calibrated else None,
                             float(cands.p_global[r]) if calibrated else None,
                             float(cands.p_local[r]) if calibrated else None,
                             matcher=settings.matcher_for(sp) if loc is not None else None)

    every = [verified(int(rows[0])) for _, rows in cands.best_per_owner(1, len(inds))[0]]
    # probabilities of different species come from different calibrations and do not rank against each other:
    # without a species, the query is taken for the species of its nearest image by embedding, whose
    # candidates are ranked (and decided) first
    own = species or (max(every, key=lambda m: m.global_score).species if every else None)
    every = [m for m in every if m.species == own] + [m for m in every if m.species != own]
    ranked = every[:k]
    top = ranked[0] if ranked else None
    calibrated = top is not None and top.probability is not None
    auto = bool(settings.auto_accept if auto_accept is None else auto_accept)
    if top is None:
        verdict = Decision(NEW, 1.0, None, None, {"accept": 0.0, "new": 0.0}, {"reason": "no candidate"})
    else:
        verdict = decide_candidates(gallery, [m for m in every if m.species == own], own, auto)
        floor = settings.accept if accept is None else accept
        if verdict.decision == ACCEPT and floor is not None and top.probability is not None and top.probability < floor:
            verdict.decision, verdict.precision = REVIEW, None  # under the gallery's own floor on P(same)
            verdict.policy["reason"] = f"P(same) below the accept floor {floor}"
    return Identification(ranked, verdict.decision, top.probability if calibrated else None, calibrated,
                          verdict.policy, depth, qfeats, p_new=verdict.p_new, decision_precision=verdict.precision,
                          coverage=verdict.coverage)


def decision_policy(gallery: Gallery, species: Optional[str]) -> Optional[DecisionPolicy]:
    """The species' fitted decision policy (None before `recalibrate`, or for a species too small to have one)."""
    d = (gallery.settings.decision_policy or {}).get(species or "")
    return DecisionPolicy.from_dict(d) if d else None


def decide_candidates(gallery: Gallery, candidates: list[VerifiedMatch], species: Optional[str],
                      auto_accept: bool) -> Decision:
    """The gallery's decision on a candidate list (individuals, best first): its species' policy, or review."""
    pol = decision_policy(gallery, species)
    if pol is None:
        return undecided(f"no decision policy for species {species!r}: recalibrate (a species needs at least "
                         "5 individuals with two verified images to decide alone)")
    feats = candidate_features([m.probability for m in candidates], [m.global_score for m in candidates],
                               [m.local_score for m in candidates])
    return pol.decide(feats, gallery.settings.policy(), species, auto_accept)




def evidence(gallery: Gallery, image: Image.Image, image_id: int, caption: Optional[str] = None,
             query_features: Optional[dict[str, LocalFeatures]] = None) -> Image.Image:
    """Query and a gallery image side by side with their verified matches (the gallery image drawn from its
    stored thumbnail, or a grey box when it has none)."""
    name = gallery.settings.matcher_for(gallery.image_species(image_id))
    stored = gallery.features.stored([int(image_id)], name).get(int(image_id))
    if stored is None:
        raise GalleryError(f"image {image_id} has no stored {name} features: no evidence to draw")
    m = gallery.features.matcher(name)
    qf = (query_features or {}).get(name) or m.extract(image)
    match: PairMatch = m.match(qf, stored)
    thumb = gallery.thumbnail_path(int(image_id))
    other = Image.open(thumb).convert("RGB") if thumb else Image.new("RGB", stored.image_size, (200, 200, 200))
    text = caption or f"{name}: {int(match.inliers.sum())} verified of {len(match.idx0)} tentative matches"
    return draw_matches(image, other, qf, stored, match, caption=text)


__all__ = ["identify", "evidence", "Identification", "VerifiedMatch", "set_matcher", "extract_missing", "calibration_set",
           "gallery_ranker", "decide_candidates", "decision_policy"]
