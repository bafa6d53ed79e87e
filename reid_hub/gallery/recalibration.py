"""Calibration of a gallery on its own enrolled individuals: the open-set threshold on the global score,
and P(same individual) for the global, local and fused scores per species (with a pooled fallback)."""
from __future__ import annotations

import logging
from typing import Any, Callable, Optional

import numpy as np

from ..errors import DataError, GalleryError
from ..scoring.calibration import calibrate_threshold
from ..scoring.decisions import DecisionPolicy, views_from_pairs
from ..scoring.fusion import ANY_SPECIES, CalibrationSet, fit_fusion, held_out_probability
from ..scoring.matchers import default_shortlist
from ..scoring.ranker import labelled_pairs
from .store import Gallery

log = logging.getLogger(__name__)

#: a species' isotonic calibration that gives the two best candidate individuals the same probability for more
#: than this share of its queries cannot rank them: the logistic fit (strictly monotone) replaces it
MAX_TIED_SHARE = 0.5
#: candidates verified per calibration query (the ranks where decisions are taken); verified pairs are cached in the
#: gallery, so a recalibration after an enrollment verifies only the pairs of the new images
CALIBRATION_DEPTH = 40


def stable_sample(ids: np.ndarray, size: int) -> np.ndarray:
    """Positions of `size` of these image ids, chosen by a hash of each id: a seeded sample that enrolling more
    images changes only where a new image displaces an old one (so cached verified pairs stay useful)."""
    key = (np.asarray(ids, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(11)
    return np.sort(np.argsort(key, kind="stable")[:size])


def calibrate_open_set(gallery: Gallery, max_images: int = 5000) -> dict[str, Any]:
    """The open-set threshold on the best global score, from the gallery's genuine/impostor best scores."""
    ids, labels = gallery.labelled_images()
    if len(labels) > max_images:  # a seeded sample keeps calibration quadratic in max_images, not in the gallery
        pick = np.sort(np.random.default_rng(0).choice(len(labels), size=max_images, replace=False))
        ids, labels = ids[pick], labels[pick]
    if len(set(labels)) < 2 or len(labels) < 3:
        raise GalleryError("calibration needs at least two individuals and three images")
    vec = gallery.embeddings_by_id(ids)  # only the sample's vectors are read
    e = np.stack([vec[int(i)] for i in ids])
    sim = e @ e.T
    thr = calibrate_threshold(sim, labels)
    s = sim.copy()
    np.fill_diagonal(s, -np.inf)
    same = labels[:, None] == labels[None, :]
    gen = [float(np.max(np.where(same[i], s[i], -np.inf))) for i in range(len(labels)) if same[i].sum() > 1]
    imp = [float(np.max(np.where(~same[i], s[i], -np.inf))) for i in range(len(labels))]
    report = {"threshold": thr, "genuine_pairs": len(gen), "impostor_pairs": len(imp),
              "true_match_rate": float(np.mean(np.array(gen) >= thr)) if gen else None,
              "false_match_rate": float(np.mean(np.array(imp) >= thr))}
    gallery.update_settings(threshold=thr, calibration=report)
    return report


def _species_pairs(gallery: Gallery, species: str, depth: int, max_images: int) -> Optional[tuple[dict, np.ndarray]]:
    ids, labels = gallery.labelled_images(species)
    name = gallery.settings.matcher_for(species)
    feats = gallery.features.stored(ids.tolist(), name)
    keep = np.array([int(i) in feats for i in ids], bool)  # only images that can be verified
    ids, labels = ids[keep], labels[keep]
    if len(ids) > max_images:
        pick = stable_sample(ids, max_images)
        ids, labels = ids[pick], labels[pick]
    counts = {lbl: int((labels == lbl).sum()) for lbl in set(labels.tolist())}
    if len(counts) < 2 or max(counts.values(), default=0) < 2:
        return None
    vec = gallery.embeddings_by_id(ids)  # only the sample's vectors are read
    e = np.stack([vec[int(i)] for i in ids])
    m = gallery.features.matcher(name)
    flist = [feats[int(i)] for i in ids]
    idl = [int(i) for i in ids]

    def local(qi: np.ndarray, ci: np.ndarray) -> np.ndarray:
        keys = [(min(idl[a], idl[b]), max(idl[a], idl[b])) for a, b in zip(qi.tolist(), ci.tolist())]
        known = gallery.features.pair_scores(keys, name)
        fresh = {}
        for (a, b), k in zip(zip(qi.tolist(), ci.tolist()), keys):
            if k not in known and k not in fresh:
                fresh[k] = float(m.match(flist[a], flist[b]).score)
        if fresh:
            gallery.features.store_pair_scores(fresh, name)
        return np.array([known[k] if k in known else fresh[k] for k in keys])

    pairs = labelled_pairs(e @ e.T, labels, local, min(depth, CALIBRATION_DEPTH))
    if pairs["same"].all() or not pairs["same"].any():
        return None
    return pairs, labels


def _policy_report(pol: Optional[DecisionPolicy], gallery: Gallery, species: str) -> dict[str, Any]:
    """What the species' decision policy does at the gallery's precision target (or why it decides nothing)."""
    if pol is None:
        return {"automatic": False, "reason": "too few individuals or views to state a precision (needs 5 "
                                              "individuals and 30 held-out queries): everything is reviewed"}
    ps = gallery.settings.policy()
    acc, new = pol.rules(ps.target(species), ps.new_share, ps.delta)
    auto = acc.threshold is not None or new.threshold is not None
    return {"automatic": auto, **pol.report, "target_precision": ps.target(species), "accept": acc.to_dict(),
            "new": new.to_dict(), **({} if auto else {"reason": "the held-out evidence cannot show the target "
                                                              "precision: everything is reviewed"})}


def recalibrate(gallery: Gallery, kind: str = "isotonic", shortlist: Optional[int] = None,
                max_images: int = 600, progress: Optional[Callable[[float, str], None]] = None) -> dict[str, Any]:
    """Fit P(same individual) per species on the gallery's own individuals (each image against its shortlist
    among the others, verified with the stored local features, pairs verified before read from the gallery's
    cache) and a pooled fallback, and the species' decision policy (P(new), automatic decisions at the gallery's
    precision target, leave-individual-out); store them with the gallery. Also refreshes the global open-set
    threshold. Returns the report per species."""
    settings = gallery.settings
    default = settings.shortlist
    species = sorted({d["species"] for d in gallery.individuals()})
    fitted, pooled, report, policies = {}, [], {}, {}
    offset = 0
    for n, sp in enumerate(species):
        if progress is not None:
            progress(n / (len(species) + 1), f"calibrating {sp or '(no species)'}")
        size = len(gallery.species_image_ids(sp))
        depth = int(shortlist or default or default_shortlist(settings.matcher_for(sp), size))
        got = _species_pairs(gallery, sp, depth, max_images)
        if got is None:
            report[sp or "(none)"] = {"skipped": "needs two individuals, one with two verified images"}
            continue
        pairs, labels = got
        try:
            fitted[sp] = fit_fusion(pairs, labels, kind)
            tied = fitted[sp].report.get("best_two_tied", 0.0)
            if kind == "isotonic" and tied > MAX_TIED_SHARE:  # flat over the scores that matter: cannot rank
                fitted[sp] = fit_fusion(pairs, labels, "logistic")
                fitted[sp].report["fallback"] = (f"logistic: the isotonic fit tied the two best candidates of "
                                                 f"{tied:.0%} of queries")
        except DataError as exc:
            report[sp or "(none)"] = {"skipped": str(exc)}
            continue
        pol = DecisionPolicy.fit(views_from_pairs(
            pairs["query"], pairs["candidate"], held_out_probability(pairs, labels, fitted[sp].report["kind"]),
            pairs["global"], pairs["local"], labels))
        if pol is not None:
            policies[sp] = pol.to_dict()
        report[sp or "(none)"] = {"matcher": settings.matcher_for(sp), "new_threshold": fitted[sp].new_threshold,
                                  **fitted[sp].report, "decisions": _policy_report(pol, gallery, sp)}
        shifted = dict(pairs)
        shifted["query"] = pairs["query"] + offset
        shifted["candidate"] = pairs["candidate"] + offset
        pooled.append((shifted, labels))
        offset += len(labels)
    if not fitted:
        raise GalleryError("recalibration needs, for some species, two individuals and one with two verified "
                           "images (images enrolled with their pictures have local features)")
    merged = {k: np.concatenate([p[k] for p, _ in pooled]) for k in pooled[0][0]}
    fitted[ANY_SPECIES] = fit_fusion(merged, np.concatenate([lbl for _, lbl in pooled]), kind)
    report[ANY_SPECIES] = {"new_threshold": fitted[ANY_SPECIES].new_threshold, **fitted[ANY_SPECIES].report}
    gallery.update_settings(fusion_calibration=CalibrationSet(fitted).to_dict(), decision_policy=policies or None)
    try:
        report["open_set"] = calibrate_open_set(gallery)
    except GalleryError as exc:
        report["open_set"] = {"skipped": str(exc)}
    log.info("recalibrated %s: %s", gallery.folder, {k: v.get("pairs") for k, v in report.items()
                                                      if isinstance(v, dict)})
    return report


__all__ = ["calibrate_open_set", "recalibrate", "stable_sample"]
