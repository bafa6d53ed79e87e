"""Coarse-to-fine identification in a gallery: a FAISS shortlist, local-feature verification against the
features stored at enrollment, calibrated P(same individual), a decision band, and the evidence picture.

Gallery settings (in its meta table): `matcher` (default `DEFAULT_MATCHER`), `matcher_by_species`
({species: matcher}), `shortlist` (candidates re-scored; default: the matcher's, 100 for SIFT), `accept` (the auto-accept band), `auto_accept` (default
false: every decision goes to review; measured auto-accept precision at P >= 0.9 was 0.25-0.75),
`verification` (false: enroll without local features).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np
from PIL import Image

from ..decisions import NEW, REVIEW, DecisionBands
from ..errors import ConfigError, DataError, GalleryError
from ..fusion import CalibrationSet, known_probability
from ..matching import (DEFAULT_MATCHER, MATCHERS, LocalFeatures, LocalMatcher, PairMatch, create_matcher,
                        default_shortlist, draw_matches)

if TYPE_CHECKING:
    from .store import Gallery

log = logging.getLogger(__name__)
DEFAULT_ACCEPT = 0.9
#: auto-accept needs a calibration fitted on at least this many same-individual pairs
MIN_SAME_PAIRS_FOR_AUTO = 100


def matcher_name(gallery: "Gallery", species: Optional[str]) -> str:
    """The matcher a gallery uses for a species: its per-species choice, else its default."""
    meta = gallery._meta()
    return (meta.get("matcher_by_species") or {}).get(species or "", meta.get("matcher", DEFAULT_MATCHER))


def set_matcher(gallery: "Gallery", name: str, species: Optional[str] = None) -> None:
    """Choose the matcher of a gallery (or of one species in it). Images enrolled before keep the features
    of their old matcher; they are verified only once re-enrolled (or `extract_missing` is run)."""
    if name not in MATCHERS:
        raise ConfigError(f"unknown matcher {name!r}; choose one of {sorted(MATCHERS)}")
    with gallery._tx():
        if species:
            by = dict(gallery._meta().get("matcher_by_species") or {})
            by[species] = name
            gallery._set_meta("matcher_by_species", by)
        else:
            gallery._set_meta("matcher", name)


def matcher_instance(gallery: "Gallery", name: str) -> LocalMatcher:
    """The gallery's matcher object for `name` (created once per open gallery)."""
    cache = gallery.__dict__.setdefault("_matchers", {})
    if name not in cache:
        cache[name] = create_matcher(name)
    return cache[name]


def local_features_for(gallery: "Gallery", species: str, images: Sequence[Any]) -> Optional[tuple[str, list[bytes]]]:
    """The serialised local features of `images` for enrollment (None when the gallery's verification is off)."""
    if gallery._meta().get("verification", True) is False:
        return None
    name = matcher_name(gallery, species)
    m = matcher_instance(gallery, name)
    return name, [m.extract(img).to_bytes() for img in images]


def stored_features(gallery: "Gallery", image_ids: Sequence[int], matcher: str) -> dict[int, LocalFeatures]:
    """Local features stored at enrollment for these images with this matcher (images without are absent)."""
    out: dict[int, LocalFeatures] = {}
    ids = [int(i) for i in image_ids]
    for start in range(0, len(ids), 900):
        chunk = ids[start:start + 900]
        for image_id, blob in gallery.db.execute(
                f"SELECT image_id, data FROM local_features WHERE matcher=? AND image_id IN ({','.join('?' * len(chunk))})",
                [matcher, *chunk]):
            out[int(image_id)] = LocalFeatures.from_bytes(blob)
    return out


def extract_missing(gallery: "Gallery", load: Any, progress: bool = False) -> int:
    """Extract and store local features for images that lack them under their species' matcher;
    `load(image_id)` returns the image's PIL crop (or None when it is not available). Returns the count."""
    from tqdm.auto import tqdm

    rows = gallery.db.execute("SELECT m.id, i.species FROM images m JOIN individuals i ON i.id = m.individual_id "
                              "ORDER BY m.id").fetchall()
    done = 0
    for image_id, species in tqdm(rows, disable=not progress, desc="local features", unit="img"):
        name = matcher_name(gallery, species)
        if gallery.db.execute("SELECT 1 FROM local_features WHERE image_id=? AND matcher=?", (image_id, name)).fetchone():
            continue
        img = load(int(image_id))
        if img is None:
            continue
        blob = matcher_instance(gallery, name).extract(img).to_bytes()
        with gallery._tx() as db:
            db.execute("INSERT OR REPLACE INTO local_features VALUES (?, ?, ?)", (int(image_id), name, blob))
        done += 1
    return done


def calibration_set(gallery: "Gallery") -> Optional[CalibrationSet]:
    """The gallery's fitted P(same individual) calibrations (None before `recalibrate`)."""
    d = gallery._meta().get("fusion_calibration")
    return CalibrationSet.from_dict(d) if d else None


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
    """The verified ranking for one query and what to do with it: accept, review or new."""

    matches: list[VerifiedMatch]
    decision: str
    probability: Optional[float]
    calibrated: bool
    bands: dict[str, float]
    shortlist: int
    query_features: dict[str, LocalFeatures] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"decision": self.decision, "probability": self.probability, "calibrated": self.calibrated,
                "bands": self.bands, "shortlist": self.shortlist, "matches": [m.to_dict() for m in self.matches]}


def identify(gallery: "Gallery", embedding: np.ndarray, image: Optional[Image.Image], species: Optional[str] = None,
             k: int = 5, shortlist: Optional[int] = None, accept: Optional[float] = None,
             auto_accept: Optional[bool] = None) -> Identification:
    """Rank the gallery's individuals for one query: the `shortlist` best images by embedding (only
    `species` when given, filtered inside the index), each verified by local matches against its stored
    features, scored P(same individual) with the gallery's calibration for its species, aggregated per
    individual (best image). Decision: accept when P >= `accept` (and `auto_accept`, and the species'
    calibration rests on at least MIN_SAME_PAIRS_FOR_AUTO same-individual pairs), new below the species'
    open-set threshold, review in between. Without a calibration (before `recalibrate`) the global score and the
    gallery threshold decide between new and review; nothing is auto-accepted. `image` None: global only."""
    if len(gallery) == 0:
        raise GalleryError(f"gallery {gallery.folder} is empty: enroll individuals first")
    q = gallery._check(embedding)
    if len(q) != 1:
        raise DataError(f"identify takes one query embedding, got {len(q)}")
    meta = gallery._meta()
    allowed, pool = gallery._species_pool(species)
    depth = int(shortlist or meta.get("shortlist") or default_shortlist(matcher_name(gallery, species), pool))
    if depth < 1:
        raise ConfigError("the shortlist needs at least one candidate")
    scores, ids = gallery._nearest(q, min(pool, depth), allowed)
    img_ids, owner, inds = gallery._owners()
    keep = ids[0] >= 0
    cand, gscore = ids[0][keep], scores[0][keep].astype(float)
    pos = np.searchsorted(img_ids, cand)
    ok = (pos < len(img_ids)) & (img_ids[np.minimum(pos, len(img_ids) - 1)] == cand)
    cand, gscore, who = cand[ok], gscore[ok], owner[pos[ok]]
    cal = calibration_set(gallery)
    qfeats: dict[str, LocalFeatures] = {}
    per_image: list[VerifiedMatch] = []
    by_matcher: dict[str, list[int]] = {}
    for j, o in enumerate(who):
        by_matcher.setdefault(matcher_name(gallery, inds[o][2]), []).append(j)
    for name, js in by_matcher.items():
        stored = stored_features(gallery, cand[js], name) if image is not None else {}
        if image is not None:
            qfeats[name] = matcher_instance(gallery, name).extract(image)
        for j in js:
            o = who[j]
            iid, dname, sp = inds[o]
            f = stored.get(int(cand[j]))
            loc = matcher_instance(gallery, name).match(qfeats[name], f).score if f is not None else None
            vm = VerifiedMatch(iid, dname, sp, int(cand[j]), float(gscore[j]), loc, None, matcher=name if f else None)
            if cal is not None:
                try:
                    c = cal.for_species(sp)
                    p = c.probabilities([gscore[j]], [loc if loc is not None else 0.0])
                    vm.p_global, vm.p_local = float(p["global"][0]), float(p["local"][0])
                    # unverified candidates (no stored features) are scored by the global calibration alone
                    vm.probability = float(p["fused"][0]) if loc is not None else vm.p_global
                except DataError:
                    pass
            per_image.append(vm)
    best: dict[str, VerifiedMatch] = {}
    for vm in per_image:
        key = vm.probability if vm.probability is not None else vm.global_score
        got = best.get(vm.individual_id)
        if got is None or key > (got.probability if got.probability is not None else got.global_score):
            best[vm.individual_id] = vm
    ranked = sorted(best.values(), key=lambda m: -(m.probability if m.probability is not None else m.global_score))
    ranked = ranked[:k]
    accept_band = float(accept if accept is not None else meta.get("accept", DEFAULT_ACCEPT))
    top = ranked[0] if ranked else None
    if top is not None and top.probability is not None:
        c = cal.for_species(top.species)
        auto = bool(meta.get("auto_accept", False) if auto_accept is None else auto_accept)
        # a calibration fitted on few labelled pairs says 1.0 too easily: nothing is auto-accepted on it
        supported = c.report.get("same_pairs", 0) >= MIN_SAME_PAIRS_FOR_AUTO
        # 'new' means none of the candidates: decided on P(known), the summed probabilities of the candidate
        # individuals of the top candidate's species, where the calibration has its threshold
        known = None
        if c.known_threshold is not None:
            known = known_probability([m.probability for m in best.values()
                                       if m.probability is not None and m.species == top.species])
        new_band = c.new_threshold if known is None else c.known_threshold
        bands = DecisionBands(accept=accept_band, new=min(accept_band, new_band), auto_accept=auto and supported)
        decision, prob, calibrated = bands.decide(top.probability, known), top.probability, True
        band_d = {"accept": bands.accept, "new": bands.new, "auto_accept": bands.auto_accept,
                  "calibration_same_pairs": int(c.report.get("same_pairs", 0)),
                  "calibration": c.report.get("kind", "isotonic"), "p_known": known,
                  "new_rule": "p_known" if known is not None else "p_best"}
        if c.report.get("fallback"):
            band_d["calibration_fallback"] = c.report["fallback"]
    else:
        thr = gallery.threshold
        decision = NEW if top is None or (thr is not None and top.global_score < thr) else REVIEW
        prob, calibrated, band_d = None, False, {"threshold": thr}
    return Identification(ranked, decision, prob, calibrated, band_d, depth, qfeats)


def evidence(gallery: "Gallery", image: Image.Image, image_id: int, caption: Optional[str] = None,
             query_features: Optional[dict[str, LocalFeatures]] = None) -> Image.Image:
    """Query and a gallery image side by side with their verified matches (the gallery image drawn from its
    stored thumbnail, or a grey box when it has none)."""
    row = gallery.db.execute("SELECT i.species FROM images m JOIN individuals i ON i.id = m.individual_id "
                             "WHERE m.id=?", (int(image_id),)).fetchone()
    if row is None:
        raise GalleryError(f"no image {image_id} in {gallery.folder}")
    name = matcher_name(gallery, row[0])
    stored = stored_features(gallery, [int(image_id)], name).get(int(image_id))
    if stored is None:
        raise GalleryError(f"image {image_id} has no stored {name} features: no evidence to draw")
    m = matcher_instance(gallery, name)
    qf = (query_features or {}).get(name) or m.extract(image)
    match: PairMatch = m.match(qf, stored)
    thumb = gallery.thumbnail_path(int(image_id))
    other = Image.open(thumb).convert("RGB") if thumb else Image.new("RGB", stored.image_size, (200, 200, 200))
    text = caption or f"{name}: {int(match.inliers.sum())} verified of {len(match.idx0)} tentative matches"
    return draw_matches(image, other, qf, stored, match, caption=text)


__all__ = ["identify", "evidence", "matcher_instance", "Identification", "VerifiedMatch", "matcher_name", "set_matcher",
           "local_features_for", "stored_features", "extract_missing", "calibration_set", "DEFAULT_ACCEPT"]
