"""A gallery's review decisions on a discovery's proposals, fed back as answers.

`reid-hub discover --gallery G` sends each discovered individual to G's review queue. What people decide there
(confirm a candidate, mint a new individual, reject a candidate, undo) says something about the collection's rows,
and it lands in the same answer log as pair answers, with the reviewer's decision as its actor:
- a decided proposal (confirmed, new, auto-accepted) is one animal: its rows are "same", in a chain;
- two decided proposals that went to one individual are "same"; to two individuals, "different";
- a proposal whose candidate X was rejected is "different" from a proposal decided as X.
An undone decision withdraws what it implied (a "skip" in the log, so the history stays whole).
"""
from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import pandas as pd

from ..errors import GalleryError
from .answers import DIFFERENT, SAME, SKIP, AnswerLog

log = logging.getLogger(__name__)

#: the output folder's file that ties each proposal to the rows it holds
MEMBERS_FILE = "gallery_members.csv"
#: actor prefix of the answers this module records
ACTOR = "review"


def write_members(out: Path, members: Mapping[int, Sequence[str]]) -> None:
    """Keep which rows (by key) each proposal holds, beside the discovery's outputs (atomically), adding to the
    proposals an earlier run sent."""
    members = {**read_members(out), **members}
    rows = [{"proposal": int(p), "path": k} for p, keys in members.items() for k in keys]
    tmp = out / f".{MEMBERS_FILE}.tmp"
    pd.DataFrame(rows, columns=["proposal", "path"]).to_csv(tmp, index=False)
    tmp.replace(out / MEMBERS_FILE)


def read_members(out: Path) -> dict[int, list[str]]:
    """Proposal -> the keys of its rows; empty when the discovery sent nothing to a gallery."""
    f = out / MEMBERS_FILE
    if not f.is_file():
        return {}
    df = pd.read_csv(f, dtype={"path": str})
    return {int(p): g["path"].tolist() for p, g in df.groupby("proposal", sort=False)}


def implied_answers(assigned: Mapping[int, Optional[str]], rejected: Mapping[int, Sequence[str]],
                    members: Mapping[int, Sequence[str]]) -> dict[tuple[str, str], str]:
    """The answers the decisions imply: `assigned` maps a proposal to the individual it was decided as (None while
    pending), `rejected` to the candidates rejected for it; pairs are (key, key) sorted."""
    out: dict[tuple[str, str], str] = {}

    def put(a: str, b: str, value: str) -> None:
        if a != b:
            out[tuple(sorted((a, b)))] = value  # type: ignore[index]

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
    assigned: dict[int, Optional[str]] = {}
    rejected: dict[int, list[str]] = {}
    for pid in members:
        try:
            p = review.get(gallery, pid)
        except GalleryError as exc:  # a proposal no longer in the gallery implies nothing
            log.warning("proposal %s: %s", pid, exc)
            continue
        decided = p.status in (review.CONFIRMED, review.MINTED, review.AUTO)
        assigned[pid] = (p.outcome or {}).get("individual_id") if decided else None
        rejected[pid] = list(p.rejected)
    want = implied_answers(assigned, rejected, members)
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


__all__ = ["MEMBERS_FILE", "write_members", "read_members", "implied_answers", "feed_review_decisions"]
