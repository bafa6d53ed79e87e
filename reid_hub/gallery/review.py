"""Human review of identity decisions: proposals, decisions with an audit trail, labelled pairs.

An identification that is not auto-accepted becomes a pending proposal: the query (one image or a video
cluster: its embeddings, a representative crop and that crop's local features), its ranked candidates
with P(same individual), the suggested decision and where it came from. A person then confirms a
candidate (the embeddings are enrolled into it), rejects candidates one by one, mints a new individual,
or undoes the last decision. Every decision is one SQLite transaction together with its audit row
(who, when, what, the state before); a retried decision returns the recorded outcome; two different
decisions racing on one proposal: the first commits, the second gets a `ConflictError` (HTTP 409).
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
from PIL import Image

from ..data.imaging import save_jpeg
from ..errors import ConfigError, ConflictError, DataError, GalleryError
from ..scoring.decisions import ACCEPT, NEW
from .identification import identify
from .store import Gallery

log = logging.getLogger(__name__)

PENDING, CONFIRMED, MINTED, AUTO = "pending", "confirmed", "new", "auto-accepted"
ACTIONS = ("confirm", "reject", "new", "undo")


@dataclass
class Proposal:
    """A pending (or decided) identity decision."""

    id: int
    status: str
    suggestion: str
    species: str
    source: str
    video: Optional[str]
    camera: Optional[str]
    cluster: Optional[str]
    n: int
    candidates: list[dict[str, Any]]
    rejected: list[str]
    probability: Optional[float]
    outcome: Optional[dict[str, Any]]
    version: int
    created_at: float
    decided_at: Optional[float]

    @property
    def current(self) -> Optional[dict[str, Any]]:
        """The best candidate not rejected yet (what the reviewer is shown)."""
        return next((c for c in self.candidates if c["individual_id"] not in self.rejected), None)

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["current"] = self.current
        return d


_COLS = ("id, status, suggestion, species, source, video, camera, cluster, n, candidates, rejected, probability, "
         "outcome, version, created_at, decided_at")


def _row(r: Sequence[Any]) -> Proposal:
    return Proposal(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], json.loads(r[9]), json.loads(r[10]), r[11],
                    json.loads(r[12]) if r[12] else None, r[13], r[14], r[15])


def get(gallery: Gallery, proposal_id: int) -> Proposal:
    r = gallery.db.execute(f"SELECT {_COLS} FROM proposals WHERE id=?", (int(proposal_id),)).fetchone()
    if r is None:
        raise GalleryError(f"no proposal {proposal_id} in {gallery.folder}")
    return _row(r)


def pending(gallery: Gallery, offset: int = 0, limit: int = 50, status: str = PENDING) -> tuple[list[Proposal], int]:
    """A page of proposals with this status (oldest first) and how many there are in all."""
    if limit < 1 or offset < 0:
        raise ConfigError("limit must be at least 1 and offset at least 0")
    total = gallery.db.execute("SELECT COUNT(*) FROM proposals WHERE status=?", (status,)).fetchone()[0]
    rows = gallery.db.execute(f"SELECT {_COLS} FROM proposals WHERE status=? ORDER BY id LIMIT ? OFFSET ?",
                              (status, int(limit), int(offset))).fetchall()
    return [_row(r) for r in rows], int(total)


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
    now = time.time()
    prepared = None
    if decision == ACCEPT:
        target = cands[0]["individual_id"]
        prepared = gallery.prepare_enrollment(e, [source] * len(e), boxes, video, frames, images,
                                              gallery.species_of(target))
    with gallery.transaction() as db:
        cur = db.execute(
            "INSERT INTO proposals (status, suggestion, species, source, video, camera, cluster, embeddings, n, frames, "
            "boxes, candidates, probability, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (PENDING, decision, species, source, video, camera, cluster, e.astype(np.float32).tobytes(), len(e),
             json.dumps([int(f) for f in frames]) if frames is not None else None,
             json.dumps([[float(v) for v in b] for b in boxes]) if boxes is not None else None,
             json.dumps(cands, default=float), prob, now))
        pid = int(cur.lastrowid)
        out: dict[str, Any] = {"proposal_id": pid, "status": PENDING, "decision": decision}
        if prepared is not None:
            ids = gallery.write_enrollment(db, target, prepared)
            outcome = {"action": "confirm", "individual_id": target, "image_ids": ids, "auto": True}
            db.execute("UPDATE proposals SET status=?, outcome=?, decided_at=? WHERE id=?",
                       (AUTO, json.dumps(outcome), now, pid))
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
           expected_version: Optional[int] = None) -> dict[str, Any]:
    """Apply one decision to a proposal: `confirm` (into `individual_id`, default the current candidate),
    `reject` (`individual_id`, default the current candidate; the next one is shown), `new` (mint an
    individual named `display_name`: unique within the species unless `force`), `undo` (revert the last
    confirm / new: its images leave the gallery, a minted individual is deleted). Returns the proposal."""
    if action not in ACTIONS:
        raise ConfigError(f"action must be one of {ACTIONS}, got {action!r}")
    p = get(gallery, proposal_id)
    if expected_version is not None and int(expected_version) != p.version:
        raise ConflictError(f"proposal {proposal_id} changed (version {p.version}, expected {expected_version})")
    if action == "undo":
        return _undo(gallery, p, actor)
    if action == "reject":
        return _reject(gallery, p, individual_id, actor)
    if p.status != PENDING:  # a retry of the decision already taken answers with it; another decision conflicts
        o = p.outcome or {}
        same = o.get("action") == action and (
            action == "new" and (display_name is None or o.get("display_name") == display_name)
            or action == "confirm" and individual_id in (None, o.get("individual_id")))
        if same:
            return get(gallery, proposal_id).to_dict()
        raise ConflictError(f"proposal {proposal_id} was already decided ({p.status}: {o.get('action')})")
    blob, frames, boxes = gallery.db.execute("SELECT embeddings, frames, boxes FROM proposals WHERE id=?",
                                             (p.id,)).fetchone()
    emb = np.frombuffer(blob, dtype=np.float32).reshape(p.n, -1)
    frames, boxes = json.loads(frames or "null"), json.loads(boxes or "null")
    images = _member_images(gallery, p.id, p.n)
    if images is None and p.n == 1:
        try:
            images = [query_image(gallery, p.id)]
        except GalleryError:
            images = None
    if action == "confirm":
        target = individual_id or (p.current or {}).get("individual_id")
        if not target:
            raise DataError(f"proposal {p.id} has no candidate left: decide 'new' or name an individual")
        species = gallery.species_of(target)  # GalleryError (404) for a deleted individual
    else:
        if not display_name or not display_name.strip():
            raise DataError("a new individual needs a display name")
        species = p.species
        clash = gallery.db.execute("SELECT id FROM individuals WHERE display_name=? AND species=?",
                                   (display_name.strip(), species)).fetchone()
        if clash and not force:
            raise ConflictError(f"an individual named {display_name.strip()!r} of species {species!r} exists "
                                f"({clash[0]}); pass force to create another")
    prepared = gallery.prepare_enrollment(emb, [p.source or f"proposal {p.id}"] * p.n, boxes, p.video, frames, images,
                                          species)
    with gallery.transaction() as db:
        cur = db.execute("UPDATE proposals SET status=?, version=version+1, decided_at=? WHERE id=? AND status=? "
                         "AND version=?", (CONFIRMED if action == "confirm" else MINTED, time.time(), p.id, PENDING,
                                           p.version))
        if cur.rowcount != 1:
            raise ConflictError(f"proposal {p.id} was decided by someone else meanwhile")
        if action == "new":
            import uuid

            target = f"ind-{uuid.uuid4().hex[:12]}"
            db.execute("INSERT INTO individuals VALUES (?, ?, ?, '', ?)", (target, display_name.strip(), species,
                                                                          time.time()))
        ids = gallery.write_enrollment(db, target, prepared)
        outcome = {"action": action, "individual_id": target, "image_ids": ids,
                   **({"display_name": display_name.strip()} if action == "new" else {})}
        db.execute("UPDATE proposals SET outcome=? WHERE id=?", (json.dumps(outcome), p.id))
        gallery.record_audit(db, actor, action, p.id, target, outcome, {"status": p.status, "version": p.version})
    gallery.finish_enrollment(ids, prepared)
    return get(gallery, p.id).to_dict()


def _reject(gallery: Gallery, p: Proposal, individual_id: Optional[str], actor: str) -> dict[str, Any]:
    target = individual_id or (p.current or {}).get("individual_id")
    if not target:
        raise DataError(f"proposal {p.id} has no candidate left to reject")
    if p.status != PENDING:
        raise ConflictError(f"proposal {p.id} was already decided ({p.status})")
    if target in p.rejected:  # a retried rejection
        return p.to_dict()
    with gallery.transaction() as db:
        cur = db.execute("UPDATE proposals SET rejected=?, version=version+1 WHERE id=? AND version=? AND status=?",
                         (json.dumps(p.rejected + [target]), p.id, p.version, PENDING))
        if cur.rowcount != 1:
            raise ConflictError(f"proposal {p.id} was changed by someone else meanwhile")
        gallery.record_audit(db, actor, "reject", p.id, target, {"rejected": target}, {"rejected": p.rejected, "version": p.version})
    return get(gallery, p.id).to_dict()


def _undo(gallery: Gallery, p: Proposal, actor: str) -> dict[str, Any]:
    if p.status == PENDING:
        if not p.rejected:
            raise ConflictError(f"proposal {p.id} has no decision to undo")
        with gallery.transaction() as db:  # undo the last rejection
            cur = db.execute("UPDATE proposals SET rejected=?, version=version+1 WHERE id=? AND version=?",
                             (json.dumps(p.rejected[:-1]), p.id, p.version))
            if cur.rowcount != 1:
                raise ConflictError(f"proposal {p.id} was changed by someone else meanwhile")
            gallery.record_audit(db, actor, "undo", p.id, p.rejected[-1], {"unrejected": p.rejected[-1]}, {"rejected": p.rejected})
        return get(gallery, p.id).to_dict()
    o = p.outcome or {}
    ids = [int(i) for i in o.get("image_ids", [])]
    with gallery.transaction() as db:
        cur = db.execute("UPDATE proposals SET status=?, outcome=NULL, version=version+1, decided_at=NULL "
                         "WHERE id=? AND version=?", (PENDING, p.id, p.version))
        if cur.rowcount != 1:
            raise ConflictError(f"proposal {p.id} was changed by someone else meanwhile")
        for i in ids:
            db.execute("DELETE FROM images WHERE id=?", (i,))
        minted = o.get("action") == "new" and not db.execute(
            "SELECT 1 FROM images WHERE individual_id=?", (o.get("individual_id"),)).fetchone()
        if minted:
            db.execute("DELETE FROM sightings WHERE individual_id=?", (o["individual_id"],))
            db.execute("DELETE FROM individuals WHERE id=?", (o["individual_id"],))
        gallery.remove_from_index(np.array(ids, dtype=np.int64))
        gallery.record_audit(db, actor, "undo", p.id, o.get("individual_id"), {"removed_images": ids, "deleted_individual": minted},
               {"status": p.status, "outcome": o, "version": p.version})
    return get(gallery, p.id).to_dict()


def audit_log(gallery: Gallery, proposal_id: Optional[int] = None, limit: int = 200) -> list[dict[str, Any]]:
    """Audit rows, newest first (of one proposal when given)."""
    q = "SELECT id, at, actor, action, proposal_id, individual_id, detail, previous FROM audit"
    args: tuple = ()
    if proposal_id is not None:
        q, args = q + " WHERE proposal_id=?", (int(proposal_id),)
    rows = gallery.db.execute(q + " ORDER BY id DESC LIMIT ?", (*args, int(limit))).fetchall()
    return [{"id": r[0], "at": r[1], "actor": r[2], "action": r[3], "proposal_id": r[4], "individual_id": r[5],
             "detail": json.loads(r[6]), "previous": json.loads(r[7]) if r[7] else None} for r in rows]


def labelled_pairs(gallery: Gallery) -> list[dict[str, Any]]:
    """What reviewers said, as labelled pairs: (proposal query, candidate individual, same?) with the scores
    the candidate had; confirmed and minted proposals say 'different' for every candidate not chosen."""
    out = []
    rows = gallery.db.execute("SELECT id, status, candidates, rejected, outcome, species, source FROM proposals "
                              "WHERE status != ?", (PENDING,)).fetchall()
    rows += gallery.db.execute("SELECT id, status, candidates, rejected, outcome, species, source FROM proposals "
                               "WHERE status = ? AND rejected != '[]'", (PENDING,)).fetchall()
    for pid, status, cands, rejected, outcome, species, source in rows:
        chosen = (json.loads(outcome) if outcome else {}).get("individual_id")
        rej = set(json.loads(rejected))
        for c in json.loads(cands):
            iid = c["individual_id"]
            if iid == chosen:
                same = True
            elif iid in rej or (status in (CONFIRMED, MINTED, AUTO)):
                same = False
            else:
                continue
            out.append({"proposal_id": pid, "species": species, "source": source, "individual_id": iid,
                        "image_id": c.get("image_id"), "same": same, "global_score": c.get("global_score"),
                        "local_score": c.get("local_score"), "probability": c.get("probability"),
                        "decided_by": "auto" if status == AUTO else "reviewer"})
    return out


__all__ = ["Proposal", "propose", "decide", "get", "pending", "audit_log", "labelled_pairs", "query_image",
           "PENDING", "CONFIRMED", "MINTED", "AUTO", "ACTIONS"]
