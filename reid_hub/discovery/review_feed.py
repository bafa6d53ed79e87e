"""A gallery's review decisions on a discovery's proposals, fed back as answers.

`reid-hub discover --gallery G` sends each discovered individual to G's review queue. What people decide there
(confirm a candidate, mint a new individual, reject a candidate, undo) says something about the collection's rows,
and it lands in the same answer log as pair answers, with the reviewer's decision as its actor:
- a decided proposal (confirmed, new, auto-accepted) is one animal: its rows are "same", in a chain;
- two decided proposals that went to one individual are "same"; to two individuals, "different";
- a proposal whose candidate X was rejected is "different" from a proposal decided as X;
- images a reviewer took out of a proposal are "different" from the images kept (and are left out of its chain).
An undone decision withdraws what it implied (a "skip" in the log, so the history stays whole).
"""
from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import pandas as pd

from ..data.atomic import write_text_atomic
from ..errors import GalleryError
from .answers import DIFFERENT, SAME, SKIP, AnswerLog

log = logging.getLogger(__name__)

#: the output folder's file that ties each proposal to the rows it holds
MEMBERS_FILE = "gallery_members.csv"
#: actor prefix of the answers this module records
ACTOR = "review"


def write_members(out: Path, members: Mapping[int, Sequence[str]],
                  shown: Optional[Mapping[int, Sequence[str]]] = None) -> None:
    """Keep which rows (by key) each proposal holds, and which of them are its images (`shown`, in the order of
    the proposal's members), beside the discovery's outputs (atomically), adding to the proposals an earlier run
    sent."""
    old = _read(out)
    rows = [r for r in old if r["proposal"] not in members]
    for p, keys in members.items():
        pos = {k: n for n, k in enumerate((shown or {}).get(p, []))}
        rows += [{"proposal": int(p), "path": k, "member": pos.get(k, "")} for k in keys]
    table = pd.DataFrame(rows, columns=["proposal", "path", "member"])
    write_text_atomic(out / MEMBERS_FILE, table.to_csv(index=False))


def _read(out: Path) -> list[dict[str, Any]]:
    f = out / MEMBERS_FILE
    if not f.is_file():
        return []
    df = pd.read_csv(f, dtype={"path": str, "member": str}, keep_default_na=False)
    if "member" not in df:  # written before take-outs
        df["member"] = ""
    return [{"proposal": int(p), "path": k, "member": m} for p, k, m in zip(df["proposal"], df["path"], df["member"])]


def read_members(out: Path) -> dict[int, list[str]]:
    """Proposal -> the keys of its rows; empty when the discovery sent nothing to a gallery."""
    got: dict[int, list[str]] = {}
    for r in _read(out):
        got.setdefault(r["proposal"], []).append(r["path"])
    return got


def read_shown(out: Path) -> dict[int, dict[int, str]]:
    """Proposal -> {position among its images: key of that row}."""
    got: dict[int, dict[int, str]] = {}
    for r in _read(out):
        if str(r["member"]).strip():
            got.setdefault(r["proposal"], {})[int(float(r["member"]))] = r["path"]
    return got


def implied_answers(assigned: Mapping[int, Optional[str]], rejected: Mapping[int, Sequence[str]],
                    members: Mapping[int, Sequence[str]],
                    taken_out: Optional[Mapping[int, Sequence[str]]] = None) -> dict[tuple[str, str], str]:
    """The answers the decisions imply: `assigned` maps a proposal to the individual it was decided as (None while
    pending), `rejected` to the candidates rejected for it, `taken_out` to the keys a reviewer took out of it;
    pairs are (key, key) sorted."""
    out: dict[tuple[str, str], str] = {}

    def put(a: str, b: str, value: str) -> None:
        if a != b:
            out[tuple(sorted((a, b)))] = value  # type: ignore[index]

    taken_out = {p: set(keys) for p, keys in (taken_out or {}).items() if keys}
    members = {p: [k for k in keys if k not in taken_out.get(p, set())] for p, keys in members.items()}
    for p, keys in taken_out.items():
        for k in sorted(keys):
            if members.get(p):
                put(members[p][0], k, DIFFERENT)
    decided = {p: iid for p, iid in assigned.items() if iid and members.get(p)}
    for p in decided:
        keys = members[p]
        for a, b in zip(keys[:-1], keys[1:]):
            put(a, b, SAME)
    for p, q in itertools.combinations(sorted(decided), 2):
        put(members[p][0], members[q][0], SAME if decided[p] == decided[q] else DIFFERENT)
    for p, rej in rejected.items():
        for q, iid in decided.items():
            if q != p and iid in rej and members.get(p):
                put(members[p][0], members[q][0], DIFFERENT)
    return out


def feed_review_decisions(answers: AnswerLog, gallery: Any, out: Path) -> dict[str, int]:
    """Bring the answer log in line with the gallery's decisions on this discovery's proposals (idempotent):
    record what they imply and is not in force yet (a pair answered directly keeps that answer), withdraw what
    an undone decision had implied. Returns
    how many answers were recorded and withdrawn."""
    from ..gallery import review

    members = read_members(out)
    if not members:
        return {"recorded": 0, "withdrawn": 0}
    shown = read_shown(out)
    assigned: dict[int, Optional[str]] = {}
    rejected: dict[int, list[str]] = {}
    taken: dict[int, list[str]] = {}
    for pid in members:
        try:
            p = review.get(gallery, pid)
        except GalleryError as exc:  # a proposal no longer in the gallery implies nothing
            log.warning("proposal %s: %s", pid, exc)
            continue
        decided = p.status in (review.CONFIRMED, review.MINTED, review.AUTO)
        assigned[pid] = (p.outcome or {}).get("individual_id") if decided else None
        rejected[pid] = list(p.rejected)
        taken[pid] = [shown[pid][k] for k in p.taken_out if k in shown.get(pid, {})]
    want = implied_answers(assigned, rejected, members, taken)
    in_force = answers.in_force()
    recorded = withdrawn = 0
    for (a, b), value in want.items():
        now = in_force.get((a, b))
        # a pair a person answered keeps that answer
        if now is None or (now.answer != value and now.actor.startswith(ACTOR + ":")):
            answers.record(a, b, value, f"{ACTOR}:gallery")
            recorded += 1
    for (a, b), now in in_force.items():
        if now.actor.startswith(ACTOR + ":") and now.answer != SKIP and (a, b) not in want:
            answers.record(a, b, SKIP, f"{ACTOR}:withdrawn")
            withdrawn += 1
    if recorded or withdrawn:
        log.info("review decisions: %d answers recorded, %d withdrawn", recorded, withdrawn)
    return {"recorded": recorded, "withdrawn": withdrawn}


__all__ = ["MEMBERS_FILE", "write_members", "read_members", "read_shown", "implied_answers", "feed_review_decisions"]
