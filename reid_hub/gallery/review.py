"""Human review of identity decisions: proposals, decisions with an audit trail, labelled pairs.

An identification that is not auto-accepted becomes a pending proposal: the query (one image or a video
cluster: its embeddings, a representative crop and that crop's local features), its ranked candidates
with P(same individual), the suggested decision and where it came from. A person then confirms a
candidate (the embeddings are enrolled into it), rejects candidates one by one, takes out the members of a clip
cluster or discovered group that are not the animal (they are never enrolled with it), mints a new individual,
or undoes the last decision. Every decision is one SQLite transaction together with its audit row
(who, when, what, the state before); a retried decision returns the recorded outcome; two different
decisions racing on one proposal: the first commits, the second gets a `ConflictError` (HTTP 409).
"""
from __future__ import annotations

import logging
from typing import Any, Optional, Sequence

import numpy as np
from PIL import Image

from ..data.imaging import save_jpeg
from ..errors import ConfigError, ConflictError, DataError, GalleryError
from ..scoring.decisions import ACCEPT, NEW
from .identification import identify
from .proposals import AUTO, CONFIRMED, MINTED, PENDING, Proposal, ProposalBook
from .store import Gallery

log = logging.getLogger(__name__)

ACTIONS = ("confirm", "reject", "new", "undo", "take_out")


def get(gallery: Gallery, proposal_id: int) -> Proposal:
    return ProposalBook(gallery).get(proposal_id)


def pending(gallery: Gallery, offset: int = 0, limit: int = 50, status: str = PENDING) -> tuple[list[Proposal], int]:
    """A page of proposals with this status (oldest first) and how many there are in all."""
    return ProposalBook(gallery).page(status, offset, limit)


def _query_path(gallery: Gallery, proposal_id: int) -> Any:
    return gallery.folder / "proposals" / f"{int(proposal_id)}.jpg"


def query_image(gallery: Gallery, proposal_id: int) -> Image.Image:
    """The representative crop of a proposal's query."""
    p = _query_path(gallery, proposal_id)
    if not p.is_file():
        raise GalleryError(f"proposal {proposal_id} has no stored query image")
    return Image.open(p).convert("RGB")


def propose(gallery: Gallery, embeddings: np.ndarray, image: Optional[Image.Image], species: str = "",
            source: str = "", video: Optional[str] = None, camera: Optional[str] = None,
            cluster: Optional[str] = None, frames: Optional[Sequence[int]] = None,
            boxes: Optional[Sequence[Any]] = None, images: Optional[Sequence[Image.Image]] = None,
            k: int = 5, actor: str = "local") -> dict[str, Any]:
    """Identify a query (one image, or the embeddings of one video cluster with a representative `image`):
    auto-accepted (enrolled at once, audited) when the gallery's decision is `accept`, minted as a new individual
    when it is `new` by the decision policy with auto-accept on, else stored as a pending proposal. Returns {"proposal_id", "status", "decision", "individual_id"?}."""
    e = gallery.check_embeddings(embeddings)
    proto = e.mean(axis=0)
    proto /= np.linalg.norm(proto)
    has_any = len(gallery) > 0 and (not species or len(gallery.species_image_ids(species)) > 0)
    auto_new = False
    if has_any:
        ident = identify(gallery, proto, image, species=species or None, k=k)
        cands = [m.to_dict() for m in ident.matches]
        decision, prob = ident.decision, ident.probability
        # a new animal the decision policy calls new at its stated precision is minted at once under auto-accept
        auto_new = decision == NEW and ident.decision_precision is not None and gallery.settings.auto_accept
    else:  # nothing of this species is known yet: a new individual, for a person to name
        cands, decision, prob = [], NEW, None
    prepared = None
    if decision == ACCEPT:
        target = cands[0]["individual_id"]
        prepared = gallery.prepare_enrollment(e, [source] * len(e), boxes, video, frames, images,
                                              gallery.species_of(target))
    book = ProposalBook(gallery)
    with gallery.transaction() as db:
        pid = book.add(db, decision, species, source, video, camera, cluster, e, frames, boxes, cands, prob)
        out: dict[str, Any] = {"proposal_id": pid, "status": PENDING, "decision": decision}
        if prepared is not None:
            book.claim(db, pid, 0, AUTO)
            ids = gallery.write_enrollment(db, target, prepared)
            outcome = {"action": "confirm", "individual_id": target, "image_ids": ids, "auto": True}
            book.set_outcome(db, pid, outcome)
            gallery.record_audit(db, actor, "auto-accept", pid, target, outcome, None)
            out.update(status=AUTO, individual_id=target)
    if prepared is not None:
        gallery.finish_enrollment(outcome["image_ids"], prepared)
    if image is not None:
        save_jpeg(image, _query_path(gallery, pid), 480, quality=90)
    if images is not None and prepared is None:
        _save_member_images(gallery, pid, images)
    if auto_new:
        made = decide(gallery, pid, "new", display_name=f"new {species or 'animal'} #{pid}", force=True,
                      actor=f"{actor}:auto-new")
        out.update(status=made["status"], individual_id=made["outcome"]["individual_id"])
    return out


def _members_dir(gallery: Gallery, pid: int) -> Any:
    return gallery.folder / "proposals" / f"{pid}"


def _save_member_images(gallery: Gallery, pid: int, images: Sequence[Image.Image]) -> None:
    """Keep a proposal's crops (small JPEGs) so a confirmed decision enrolls them with thumbnails and features."""
    for i, img in enumerate(images):
        save_jpeg(img, _members_dir(gallery, pid) / f"{i}.jpg", 320, quality=90)


def _member_images(gallery: Gallery, pid: int, n: int) -> Optional[list[Image.Image]]:
    folder = _members_dir(gallery, pid)
    paths = [folder / f"{i}.jpg" for i in range(n)]
    return [Image.open(p).convert("RGB") for p in paths] if all(p.is_file() for p in paths) else None


def decide(gallery: Gallery, proposal_id: int, action: str, individual_id: Optional[str] = None,
           display_name: Optional[str] = None, force: bool = False, actor: str = "local",
           expected_version: Optional[int] = None, members: Optional[Sequence[int]] = None) -> dict[str, Any]:
    """Apply one decision to a proposal: `confirm` (into `individual_id`, default the current candidate),
    `reject` (`individual_id`, default the current candidate; the next one is shown), `take_out` (the
    `members`, positions 0..n-1 of its images, are not the animal: a confirm or new enrolls the others only),
    `new` (mint an individual named `display_name`: unique within the species unless `force`), `undo` (revert
    the last confirm / new: its images leave the gallery, a minted individual is deleted; on a pending proposal,
    the last rejection or take-out). Returns the proposal."""
    if action not in ACTIONS:
        raise ConfigError(f"action must be one of {ACTIONS}, got {action!r}")
    book = ProposalBook(gallery)
    p = book.get(proposal_id)
    if expected_version is not None and int(expected_version) != p.version:
        raise ConflictError(f"proposal {proposal_id} changed (version {p.version}, expected {expected_version})")
    if action == "undo":
        return _undo(gallery, book, p, actor)
    if action == "reject":
        return _reject(gallery, book, p, individual_id, actor)
    if action == "take_out":
        return _take_out(gallery, book, p, members, actor)
    if p.status != PENDING:  # a retry of the decision already taken answers with it; another decision conflicts
        o = p.outcome or {}
        same = o.get("action") == action and (
            action == "new" and (display_name is None or o.get("display_name") == display_name)
            or action == "confirm" and individual_id in (None, o.get("individual_id")))
        if same:
            return p.to_dict()
        raise ConflictError(f"proposal {proposal_id} was already decided ({p.status}: {o.get('action')})")
    emb, frames, boxes = book.query(p)
    images = _member_images(gallery, p.id, p.n)
    if images is None and p.n == 1:
        try:
            images = [query_image(gallery, p.id)]
        except GalleryError:
            images = None
    keep = p.kept  # members taken out are not enrolled
    emb = emb[keep]
    frames = [frames[k] for k in keep] if frames is not None else None
    boxes = [boxes[k] for k in keep] if boxes is not None else None
    images = [images[k] for k in keep] if images is not None else None
    if action == "confirm":
        target = individual_id or (p.current or {}).get("individual_id")
        if not target:
            raise DataError(f"proposal {p.id} has no candidate left: decide 'new' or name an individual")
        species = gallery.species_of(target)  # GalleryError (404) for a deleted individual
    else:
        if not display_name or not display_name.strip():
            raise DataError("a new individual needs a display name")
        species = p.species
        clash = gallery.individual_named(display_name.strip(), species)
        if clash and not force:
            raise ConflictError(f"an individual named {display_name.strip()!r} of species {species!r} exists "
                                f"({clash}); pass force to create another")
    prepared = gallery.prepare_enrollment(emb, [p.source or f"proposal {p.id}"] * len(keep), boxes, p.video, frames,
                                          images, species)
    with gallery.transaction() as db:
        book.claim(db, p.id, p.version, CONFIRMED if action == "confirm" else MINTED)  # a race ends here, unwritten
        if action == "new":
            target = gallery.mint(db, display_name.strip(), species)
        ids = gallery.write_enrollment(db, target, prepared)
        outcome = {"action": action, "individual_id": target, "image_ids": ids,
                   **({"display_name": display_name.strip()} if action == "new" else {})}
        book.set_outcome(db, p.id, outcome)
        gallery.record_audit(db, actor, action, p.id, target, outcome, {"status": p.status, "version": p.version})
    gallery.finish_enrollment(ids, prepared)
    return book.get(p.id).to_dict()


def _reject(gallery: Gallery, book: ProposalBook, p: Proposal, individual_id: Optional[str],
            actor: str) -> dict[str, Any]:
    target = individual_id or (p.current or {}).get("individual_id")
    if not target:
        raise DataError(f"proposal {p.id} has no candidate left to reject")
    if p.status != PENDING:
        raise ConflictError(f"proposal {p.id} was already decided ({p.status})")
    if target in p.rejected:  # a retried rejection
        return p.to_dict()
    with gallery.transaction() as db:
        book.set_rejected(db, p, p.rejected + [target])
        gallery.record_audit(db, actor, "reject", p.id, target, {"rejected": target},
                             {"rejected": p.rejected, "version": p.version})
    return book.get(p.id).to_dict()


def _take_out(gallery: Gallery, book: ProposalBook, p: Proposal, members: Optional[Sequence[int]],
              actor: str) -> dict[str, Any]:
    if p.status != PENDING:
        raise ConflictError(f"proposal {p.id} was already decided ({p.status}): undo it first")
    if not members:
        raise ConfigError("take_out names the members that are not the animal (positions 0..n-1 of its images)")
    bad = [int(k) for k in members if not 0 <= int(k) < p.n]
    if bad:
        raise ConfigError(f"proposal {p.id} has members 0..{p.n - 1}; no member {bad[0]}")
    new = sorted(set(p.taken_out) | {int(k) for k in members})
    if len(new) >= p.n:
        raise ConfigError(f"proposal {p.id}: taking out every member leaves no animal; reject it instead")
    if new == sorted(p.taken_out):  # a retried take-out
        return p.to_dict()
    with gallery.transaction() as db:
        book.set_taken_out(db, p, new)
        gallery.record_audit(db, actor, "take_out", p.id, None, {"taken_out": new},
                             {"taken_out": p.taken_out, "version": p.version})
    return book.get(p.id).to_dict()


def _undo(gallery: Gallery, book: ProposalBook, p: Proposal, actor: str) -> dict[str, Any]:
    if p.status == PENDING:
        last = next(iter(gallery.audit_log(p.id, 1)), None)
        if last is not None and last.get("action") == "take_out" and p.taken_out:  # undo the last take-out
            before = (last.get("previous") or {}).get("taken_out", [])
            with gallery.transaction() as db:
                book.set_taken_out(db, p, before)
                gallery.record_audit(db, actor, "undo", p.id, None, {"taken_out": before},
                                     {"taken_out": p.taken_out})
            return book.get(p.id).to_dict()
        if not p.rejected:
            raise ConflictError(f"proposal {p.id} has no decision to undo")
        with gallery.transaction() as db:  # undo the last rejection
            book.set_rejected(db, p, p.rejected[:-1])
            gallery.record_audit(db, actor, "undo", p.id, p.rejected[-1], {"unrejected": p.rejected[-1]},
                                 {"rejected": p.rejected})
        return book.get(p.id).to_dict()
    o = p.outcome or {}
    ids = [int(i) for i in o.get("image_ids", [])]
    with gallery.transaction() as db:
        book.reopen(db, p)
        minted = gallery.unenroll(db, ids, o.get("individual_id") if o.get("action") == "new" else None)
        gallery.record_audit(db, actor, "undo", p.id, o.get("individual_id"),
                             {"removed_images": ids, "deleted_individual": minted},
                             {"status": p.status, "outcome": o, "version": p.version})
    return book.get(p.id).to_dict()


def audit_log(gallery: Gallery, proposal_id: Optional[int] = None, limit: int = 200) -> list[dict[str, Any]]:
    """Audit rows, newest first (of one proposal when given)."""
    return gallery.audit_log(proposal_id, limit)


def decided_pairs(gallery: Gallery) -> list[dict[str, Any]]:
    """What reviewers said, as labelled pairs: (proposal query, candidate individual, same?) with the scores
    the candidate had; confirmed and minted proposals say 'different' for every candidate not chosen."""
    out = []
    for p in ProposalBook(gallery).reviewed():
        chosen = (p.outcome or {}).get("individual_id")
        rej = set(p.rejected)
        for c in p.candidates:
            iid = c["individual_id"]
            if iid == chosen:
                same = True
            elif iid in rej or (p.status in (CONFIRMED, MINTED, AUTO)):
                same = False
            else:
                continue
            out.append({"proposal_id": p.id, "species": p.species, "source": p.source, "individual_id": iid,
                        "image_id": c.get("image_id"), "same": same, "global_score": c.get("global_score"),
                        "local_score": c.get("local_score"), "probability": c.get("probability"),
                        "decided_by": "auto" if p.status == AUTO else "reviewer"})
    return out


__all__ = ["Proposal", "propose", "decide", "get", "pending", "audit_log", "decided_pairs", "query_image",
           "PENDING", "CONFIRMED", "MINTED", "AUTO", "ACTIONS"]
