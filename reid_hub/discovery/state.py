"""A discovery's groups under its constraints and people's answers, without the images or the model.

`GroupState` holds the candidate graph's scored pairs, the constraints of the collection's structure, the answer
log and the grouping that follows. A person's action (a pair answer, or a whole group reviewed at once) is recorded
and the groups it touches are regrouped at once; the full regroup (which the pair questions' dendrogram needs) runs
when questions are asked. `save`/`load` keep it in `snapshot.npz`, so a later process answers in a fraction of a
second: no table, no embedding, no torch.
"""
from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import scipy.sparse as sp
from scipy.special import expit

from ..data.atomic import atomic_path, write_json_atomic, write_text_atomic
from ..data.union_find import UnionFind
from ..errors import ConfigError, DataError
from .answers import DIFFERENT, SAME, AnswerLog
from .constraints import Constraints
from .grouping import Linkage, by_first_row, linkage
from .questions import Question, medoid, random_questions, rank_questions

log = logging.getLogger(__name__)

#: the most images a group question shows of its group, and of each neighbouring group beside it
GROUP_SHOWN = 12
NEIGHBOUR_SHOWN = 1
#: the most neighbouring groups shown beside a group question
NEIGHBOURS = 8

SNAPSHOT_VERSION = 1
#: what each column of the pair questions means (printed by `reid-hub questions list`)
QUESTION_COLUMNS = {
    "question": "rank of the question, best first",
    "a, b": "the two images asked about (paths as in the table)",
    "a_row, b_row": "their row numbers: answer with --a A_ROW --b B_ROW",
    "p_same": "P(same animal) the grouping gives the pair now",
    "gain": "expected number of image pairs whose grouping an answer corrects",
    "kind": "split: one group now, is it one animal?  merge: two groups now, are they one animal?",
}


@dataclass(frozen=True)
class ReviewCost:
    """Simulated human time: `per_action` seconds for every question answered or group reviewed, plus
    `per_image` seconds for every image it shows."""

    per_image: float = 1.5
    per_action: float = 3.0

    def __post_init__(self) -> None:
        if self.per_image < 0 or self.per_action < 0:
            raise ConfigError("review times must be zero or more seconds")

    def seconds(self, images: int) -> float:
        return self.per_action + self.per_image * images


@dataclass(frozen=True)
class GroupQuestion:
    """Is this discovered individual one animal, and is it one of the groups beside it? `rows`: the images shown
    (at most 12, one per confirmed part, the group's most typical first); `neighbours`: (group, rows shown, P(same))
    of the nearest other groups; `gain`: expected image pairs an answer settles."""

    group: int
    rows: tuple[int, ...]
    size: int
    neighbours: tuple[tuple[int, tuple[int, ...], float], ...]
    p_within: float
    gain: float

    @property
    def images_shown(self) -> int:
        return len(self.rows) + sum(len(r) for _, r, _ in self.neighbours)


class GroupState:
    """The grouping of `keys` (one per row) over the scored candidate pairs (i < j, `similarity`), under the
    structure's constraints and the answers in `answers`."""

    def __init__(self, keys: Sequence[str], species: Sequence[str], i: np.ndarray, j: np.ndarray,
                 similarity: np.ndarray, structure: Optional[Constraints] = None,
                 answers: Optional[AnswerLog] = None, threshold: float = 0.25, slope: float = 0.05,
                 strategy: str = "gain") -> None:
        self.keys = [str(k) for k in keys]
        if len(set(self.keys)) != len(self.keys):
            raise ConfigError("every row needs a distinct key (its path); the table repeats one")
        self.row_of = {k: r for r, k in enumerate(self.keys)}
        self.species = np.asarray([str(s) for s in species], dtype=object)
        self.structure = structure or Constraints(len(self.keys))
        self.answers = answers
        self.threshold, self.slope, self.strategy = float(threshold), float(slope), strategy
        self.set_pairs(i, j, similarity)

    # -- state ------------------------------------------------------------------------------------------------
    def set_pairs(self, i: np.ndarray, j: np.ndarray, similarity: np.ndarray) -> np.ndarray:
        """Replace the scored candidate pairs and regroup."""
        self.i, self.j = np.asarray(i, np.int64), np.asarray(j, np.int64)
        self.sim = np.asarray(similarity, np.float64)
        return self.regroup()

    @property
    def n(self) -> int:
        return len(self.keys)

    def answered(self, current: Optional[dict[tuple[str, str], str]] = None) -> list[tuple[int, int, bool]]:
        """(row, row, same) of every answer in force (skips left out; rows not in this collection ignored);
        `current`: the log's answers in force when the caller has already read them."""
        if self.answers is None:
            return []
        out = []
        for (a, b), ans in (self.answers.current() if current is None else current).items():
            if ans in (SAME, DIFFERENT) and a in self.row_of and b in self.row_of:
                out.append((self.row_of[a], self.row_of[b], ans == SAME))
        return out

    def constraints(self, answered: Optional[list[tuple[int, int, bool]]] = None) -> Constraints:
        """Structure plus answers (`answered`, default: read from the log): "same" is a must-link, "different" a
        cannot-link (answers win)."""
        c = self.structure.copy()
        for a, b, same in (self.answered() if answered is None else answered):
            (c.add_must if same else c.add_cannot)(a, b)
        return c

    def p_same(self, similarity: np.ndarray) -> np.ndarray:
        """P(same individual) of pairs from their similarity."""
        return expit((np.asarray(similarity, float) - self.threshold) / self.slope)

    # -- grouping ---------------------------------------------------------------------------------------------
    def _base(self, answered: list[tuple[int, int, bool]]) -> Constraints:
        base = self.structure.copy()
        for a, b, same in answered:
            if not same:
                base.add_cannot(a, b)
        return base

    def regroup(self) -> np.ndarray:
        """Group every row under the current constraints (the linkage, then the "same" answers); returns and keeps
        the labels (0..m-1) and the dendrogram the pair questions come from."""
        answered = self.answered()
        base = self._base(answered)
        self.link: Linkage = linkage(self.n, self.i, self.j, self.sim, self.threshold, base)
        self.fresh = True
        self._animals: Optional[dict[str, Any]] = None
        self._linked = self.link.labels
        self.labels = self._join_answers(self._linked, answered, base)
        return self.labels

    def _regroup_part(self, rows: Sequence[int]) -> np.ndarray:
        """Regroup only the groups of `rows` (after an action about them): the linkage again over their members,
        the other groups as they were; the dendrogram is left for the next full regroup."""
        answered = self.answered()
        base = self._base(answered)
        part = np.unique(np.isin(self._linked, self._linked[np.asarray(list(rows), np.int64)]).nonzero()[0])
        local = -np.ones(self.n, np.int64)
        local[part] = np.arange(len(part))
        keep = (local[self.i] >= 0) & (local[self.j] >= 0)
        sub = Constraints(len(part), {(int(local[a]), int(local[b])) for a, b in base.must
                                      if local[a] >= 0 and local[b] >= 0},
                          {(int(local[a]), int(local[b])) for a, b in base.cannot if local[a] >= 0 and local[b] >= 0})
        got = linkage(len(part), local[self.i[keep]], local[self.j[keep]], self.sim[keep], self.threshold, sub).labels
        linked = self._linked.copy()
        linked[part] = got + int(self._linked.max()) + 1
        self._linked = by_first_row(linked)
        self.fresh = False
        self.labels = self._join_answers(self._linked, answered, base)
        return self.labels

    def _join_answers(self, labels: np.ndarray, answered: list[tuple[int, int, bool]],
                      base: Constraints) -> np.ndarray:
        """A "same" answer joins the two groups it links (unless the joined group would hold a cannot-link); rows of
        one must-link component stay together."""
        comp = self.constraints(answered).components()
        cannot_groups = {(int(labels[a]), int(labels[b])) for a, b in base.cannot}
        uf = UnionFind(int(labels.max()) + 1 if len(labels) else 0)
        members: dict[int, set[int]] = {g: {g} for g in range(len(uf.parent))}
        for a, b, same in answered:
            if not same:
                continue
            ra, rb = uf.find(int(labels[a])), uf.find(int(labels[b]))
            if ra == rb:
                continue
            if any((x, y) in cannot_groups or (y, x) in cannot_groups for x in members[ra] for y in members[rb]):
                continue
            root = uf.union(ra, rb)
            members[root] = members[ra] | members[rb]
        merged = np.array([uf.find(int(g)) for g in labels], np.int64) if len(labels) else labels.copy()
        first: dict[int, int] = {}
        for r in range(len(merged)):
            first.setdefault(int(comp[r]), int(merged[r]))
            merged[r] = first[int(comp[r])]
        return by_first_row(merged)

    def confidence(self) -> np.ndarray:
        """Per row: the mean P(same) to the members of its group among its candidate pairs; for a row alone in
        its group, 1 - the largest P(same) to any other row."""
        p = self.p_same(self.sim)
        tot, cnt, best_other = np.zeros(self.n), np.zeros(self.n), np.zeros(self.n)
        same = self.labels[self.i] == self.labels[self.j]
        for ends in (self.i, self.j):
            np.add.at(tot, ends[same], p[same])
            np.add.at(cnt, ends[same], 1)
            np.maximum.at(best_other, ends[~same], p[~same])
        return np.where(cnt > 0, tot / np.maximum(cnt, 1), 1 - best_other)

    def animals(self) -> dict[str, Any]:
        """The estimated number of animals with a 95% interval: every decision of the grouping (each merge made
        and each best merge left undone) is drawn as "same" with its P(same), independently; the count is the
        groups, plus the merges made that are drawn "different", less the merges left undone that are drawn
        "same" (its mean and the normal interval of that sum)."""
        if not self.fresh:  # after a quick regroup: the estimate of the last full one
            return {**(self._animals or {}), "groups": int(self.labels.max()) + 1 if self.n else 0,
                    "as_of": "the last full regroup"}
        if self._animals is not None:
            return self._animals
        groups = int(self.labels.max()) + 1 if self.n else 0
        made = self.p_same(np.array([c.similarity for c in self.link.merges], float))
        undone = self.p_same(np.array([c.similarity for c in self.link.undone], float))
        mean = groups + float((1 - made).sum()) - float(undone.sum())
        sd = float(np.sqrt((made * (1 - made)).sum() + (undone * (1 - undone)).sum()))
        lo, hi = max(1.0, mean - 1.96 * sd), mean + 1.96 * sd
        self._animals = {"groups": groups, "estimate": round(mean, 1), "lower": int(np.floor(lo)),
                         "upper": int(np.ceil(hi)),
                         "method": "grouping decisions drawn from their P(same); normal 95% interval of the count"}
        return self._animals

    def draw_labels(self, rng: np.random.Generator) -> np.ndarray:
        """One plausible grouping, for carrying the identification's uncertainty into what follows (abundance):
        each decision of the grouping (a merge made, a best merge left undone) drawn "same" with its P(same),
        independently, while what the structure and people's answers settled stays as it is."""
        if not self.fresh:
            self.regroup()
        comp = self.link.components
        m = int(comp.max()) + 1 if self.n else 0
        rep = list(range(m))  # one leaf under each dendrogram node
        for mg in self.link.merges:
            rep.append(rep[mg.left])
        uf = UnionFind(m)
        for decisions in (self.link.merges, self.link.undone):
            if decisions:
                p = self.p_same(np.array([d.similarity for d in decisions]))
                for d, yes in zip(decisions, rng.random(len(decisions)) < p):
                    if yes:
                        uf.union(rep[d.left], rep[d.right])
        for a, b, same in self.answered():
            if same:
                uf.union(int(comp[a]), int(comp[b]))
        return by_first_row(np.array([uf.find(int(c)) for c in comp], np.int64)) if self.n else comp

    # -- questions --------------------------------------------------------------------------------------------
    def _asked(self, current: dict[tuple[str, str], str]) -> set[tuple[int, int]]:
        asked = set()
        for a, b in current:  # skips included: a skipped question is not asked again
            if a in self.row_of and b in self.row_of:
                ra, rb = self.row_of[a], self.row_of[b]
                asked.add((min(ra, rb), max(ra, rb)))
        return asked

    def _known(self) -> tuple[dict[tuple[str, str], str], list[tuple[int, int, bool]], np.ndarray,
                              set[tuple[int, int]]]:
        """What is known before asking: the log's answers in force (one read), those about these rows, the
        must-link components and the component pairs kept apart."""
        current = self.answers.current() if self.answers is not None else {}
        in_force = self.answered(current)
        c = self.constraints(in_force)
        comp = c.components()
        return current, in_force, comp, c.cannot_between(comp)

    def similarity_matrix(self) -> sp.csr_matrix:
        """The symmetric sparse matrix of the candidate pairs' similarities."""
        return sp.coo_matrix((np.concatenate([self.sim, self.sim]), (np.concatenate([self.i, self.j]),
                                                                     np.concatenate([self.j, self.i]))),
                             shape=(self.n, self.n)).tocsr()

    def questions(self, limit: int = 50, strategy: Optional[str] = None, seed: int = 0) -> list[Question]:
        """The best pair questions to ask next (`strategy` "random": the baseline)."""
        if not self.fresh:
            self.regroup()
        current, in_force, comp, blocked = self._known()
        if (strategy or self.strategy) == "random":
            return random_questions(self.i, self.j, self.p_same(self.sim), self.labels, comp, blocked,
                                    self._asked(current), limit, seed)
        return rank_questions(self.link, self.labels, self.p_same, self.similarity_matrix(), comp, blocked,
                              self._asked(current), [(a, b) for a, b, _ in in_force], limit)

    def group_questions(self, limit: int = 10, cost: "ReviewCost" = None) -> list[GroupQuestion]:
        """The groups whose review settles the most pairs per second of a person's time (`cost`): a group's
        unconfirmed parts (one image each, at most 12) are worth (1 - P(all one animal)) x their pairs, each
        nearest other group P(same) x its pairs; groups already confirmed whole, with every neighbour answered, are
        not asked."""
        cost = cost or ReviewCost()
        _, in_force, comp, blocked = self._known()
        labels, n_groups = self.labels, int(self.labels.max()) + 1 if self.n else 0
        sizes = np.bincount(labels, minlength=n_groups)
        p = self.p_same(self.sim)
        li, lj = labels[self.i], labels[self.j]
        inside = li == lj
        p_in_sum = np.bincount(li[inside], weights=p[inside], minlength=n_groups)
        p_in_cnt = np.bincount(li[inside], minlength=n_groups)
        a, b = np.minimum(li[~inside], lj[~inside]), np.maximum(li[~inside], lj[~inside])
        key = a * n_groups + b
        uniq, inv = np.unique(key, return_inverse=True)
        between = np.bincount(inv, weights=self.sim[~inside]) / (sizes[uniq // n_groups] * sizes[uniq % n_groups])
        settled = {(min(int(labels[x]), int(labels[y])), max(int(labels[x]), int(labels[y]))) for x, y, _ in in_force}
        near: dict[int, list[tuple[float, int]]] = {}
        for k, s in zip(uniq.tolist(), between.tolist()):
            ga, gb = divmod(k, n_groups)
            if (ga, gb) in settled:
                continue
            near.setdefault(ga, []).append((s, gb))
            near.setdefault(gb, []).append((s, ga))
        conf = self.confidence()
        sim = None
        members = _members(labels, n_groups)
        out: list[GroupQuestion] = []
        scored = []
        for g in range(n_groups):
            parts = _one_per_part(members[g], comp, conf)
            p_within = float(p_in_sum[g] / p_in_cnt[g]) if p_in_cnt[g] else (1.0 if len(parts) == 1 else 0.0)
            nbrs = [(h, float(self.p_same(np.array([sv]))[0])) for sv, h in sorted(near.get(g, []), reverse=True)
                    [:2 * NEIGHBOURS] if not _blocked(comp, members[g], members[h], blocked)][:NEIGHBOURS]
            best = _best_view(len(parts), int(sizes[g]), p_within, [p_h * sizes[g] * sizes[h] for h, p_h in nbrs],
                              cost)
            if best is not None:
                rate, gain, own, m = best
                scored.append((rate, gain, g, parts[:own] if own < len(parts) else parts, p_within, nbrs[:m]))
        scored.sort(key=lambda t: (-t[0], t[2]))
        for _, gain, g, parts, p_within, nbrs in scored[:limit]:
            if sim is None:
                sim = self.similarity_matrix()
            first = medoid(members[g], sim)
            shown = [first] + [r for r in parts if comp[r] != comp[first]][:len(parts) - 1]
            nb = tuple((int(h), tuple(int(r) for r in _one_per_part(members[h], comp, conf)[:NEIGHBOUR_SHOWN]), p_h)
                       for h, p_h in nbrs)
            out.append(GroupQuestion(int(g), tuple(int(r) for r in shown), int(sizes[g]), nb, p_within, float(gain)))
        return out

    # -- answers ----------------------------------------------------------------------------------------------
    def _check_rows(self, rows: Sequence[int]) -> None:
        for r in rows:
            if not 0 <= int(r) < self.n:
                raise ConfigError(f"row {r} is not in this collection of {self.n} rows")

    def answer(self, a: int, b: int, value: str, actor: str = "local") -> np.ndarray:
        """Record a person's answer about rows a and b, regroup the groups it touches, and return the labels."""
        if self.answers is None:
            raise ConfigError("this discovery keeps no answers (open it with a folder)")
        self._check_rows((a, b))
        self.answers.record(self.keys[int(a)], self.keys[int(b)], value, actor)
        return self._regroup_part((int(a), int(b)))

    def answer_group(self, shown: Sequence[int], out: Sequence[int] = (), merge: Sequence[int] = (),
                     actor: str = "local", apart: Sequence[int] = ()) -> np.ndarray:
        """A person's review of a whole group: of the images `shown`, those not in `out` are one animal (confirmed),
        those in `out` are not that animal (taken out), each row in `merge` (an image of a neighbouring group) is
        that animal too, and each row in `apart` (an image of a neighbouring group shown beside it) is not. One
        action, undone as one; returns the labels."""
        if self.answers is None:
            raise ConfigError("this discovery keeps no answers (open it with a folder)")
        shown, out, merge = [int(r) for r in shown], {int(r) for r in out}, [int(r) for r in merge]
        apart = [int(r) for r in apart]
        self._check_rows(shown + list(out) + merge + apart)
        if len(set(shown)) != len(shown) or not shown:
            raise ConfigError("a group review shows one or more distinct images")
        if not out <= set(shown):
            raise ConfigError("only images shown can be taken out")
        keep = [r for r in shown if r not in out]
        if not keep:
            raise ConfigError("a group review keeps at least one image as the animal (take out the others)")
        if (set(merge) | set(apart)) & set(shown) or set(merge) & set(apart):
            raise ConfigError("merge and apart name images of the neighbouring groups (each in one of them), not of "
                              "the group itself")
        k = self.keys
        pairs = ([(k[keep[0]], k[r], SAME) for r in keep[1:]] + [(k[keep[0]], k[r], DIFFERENT) for r in sorted(out)]
                 + [(k[keep[0]], k[r], SAME) for r in merge] + [(k[keep[0]], k[r], DIFFERENT) for r in apart])
        if not pairs:
            raise ConfigError("one image alone with no neighbour judged says nothing: show two or more, or merge")
        kind = "group" if out and merge else "take_out" if out else "merge" if merge else "confirm"
        self.answers.record_action(kind, pairs, actor, {"shown": [k[r] for r in shown],
                                                        "out": [k[r] for r in sorted(out)],
                                                        "merge": [k[r] for r in merge],
                                                        "apart": [k[r] for r in apart]})
        return self._regroup_part(shown + merge)

    def undo(self, actor: str = "local") -> np.ndarray:
        """Take back the latest action (a pair answer or a whole group review) and regroup."""
        if self.answers is not None:
            self.answers.undo(actor)
        return self.regroup()

    # -- outputs ----------------------------------------------------------------------------------------------
    def individual_names(self) -> list[str]:
        return [f"{s}-{g:04d}" if s else f"ind-{g:04d}" for s, g in zip(self.species, self.labels)]

    def question_rows(self, limit: int = 50) -> list[dict[str, Any]]:
        """The next pair questions, best first, with the paths to show."""
        return [{"question": k + 1, "a": self.keys[q.a], "b": self.keys[q.b], "a_row": q.a, "b_row": q.b,
                 "p_same": round(q.p_same, 4), "gain": round(q.gain, 3), "kind": q.kind}
                for k, q in enumerate(self.questions(limit))]

    def group_rows(self, limit: int = 10) -> list[dict[str, Any]]:
        """The next group questions, best first, with the paths and rows to show."""
        names = self.individual_names()
        return [{"question": k + 1, "individual": names[q.rows[0]], "size": q.size, "rows": list(q.rows),
                 "paths": [self.keys[r] for r in q.rows], "p_within": round(q.p_within, 4), "gain": round(q.gain, 3),
                 "neighbours": [{"individual": names[rows[0]], "rows": list(rows),
                                 "paths": [self.keys[r] for r in rows], "p_same": round(p, 4)}
                                for _, rows, p in q.neighbours]}
                for k, q in enumerate(self.group_questions(limit))]

    def core_summary(self) -> dict[str, Any]:
        """What the grouping says now: images, individuals (per species), answers, constraints."""
        ans = self.answered()
        c = self.constraints(ans)
        species = {}
        for s in sorted(set(self.species.tolist())):
            rows = np.nonzero(self.species == s)[0]
            species[s] = {"images": int(len(rows)), "individuals": int(len(np.unique(self.labels[rows])))}
        return {"images": self.n, "individuals": int(self.labels.max() + 1) if self.n else 0, "species": species,
                "threshold": self.threshold,
                "answers": {"same": int(sum(s for *_, s in ans)), "different": int(sum(not s for *_, s in ans)),
                            "actions": self.answers.actions_in_force() if self.answers is not None else 0},
                "constraints": {"must_link": len(c.must), "cannot_link": len(c.cannot)},
                "candidate_pairs": int(len(self.i))}

    def write_outputs(self, out: str | Path, summary: dict[str, Any], questions: bool = True) -> dict[str, Path]:
        """individuals.csv, summary.json and (`questions`) questions.csv in `out`, each written atomically."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        files = {"individuals": out / "individuals.csv", "summary": out / "summary.json"}
        write_text_atomic(files["individuals"], _csv(["path", "individual", "confidence"],
                                                     zip(self.keys, self.individual_names(),
                                                         np.round(self.confidence(), 4).tolist())))
        if questions:
            files["questions"] = out / "questions.csv"
            rows = self.question_rows()
            cols = ["question", "a", "b", "a_row", "b_row", "p_same", "gain", "kind"]
            write_text_atomic(files["questions"], _csv(cols, ([r[c] for c in cols] for r in rows)))
        write_json_atomic(files["summary"], summary)
        return files

    def update_outputs(self, out: str | Path) -> dict[str, Path]:
        """After an answer: individuals.csv and summary.json brought up to date (the summary's other fields kept;
        questions.csv is rewritten by the next full write). The snapshot needs nothing: answers live in the log."""
        out = Path(out)
        old: dict[str, Any] = {}
        if (out / "summary.json").is_file():
            try:
                old = json.loads((out / "summary.json").read_text())
            except ValueError:
                old = {}
        species_old = old.get("species", {})
        new = self.core_summary()
        for s, entry in new["species"].items():
            entry.update({k: v for k, v in species_old.get(s, {}).items() if k not in entry})
        return self.write_outputs(out, {**old, **new, "animals": self.animals()}, questions=False)

    # -- snapshot ---------------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Keep what answering needs in `path` (snapshot.npz), atomically."""
        must = np.array(sorted(self.structure.must), np.int64).reshape(-1, 2)
        cannot = np.array(sorted(self.structure.cannot), np.int64).reshape(-1, 2)
        with atomic_path(path) as tmp:
            np.savez(tmp, version=np.array(SNAPSHOT_VERSION), keys=np.array(self.keys), species=np.array(
                self.species.astype(str)), i=self.i, j=self.j, sim=self.sim, must=must, cannot=cannot,
                settings=np.array(json.dumps({"threshold": self.threshold, "slope": self.slope,
                                              "strategy": self.strategy})))

    @classmethod
    def load(cls, path: str | Path, answers: Optional[AnswerLog] = None) -> "GroupState":
        """The state kept by `save`, with the answers of `answers` applied."""
        try:
            z = np.load(path, allow_pickle=False)
            if int(z["version"]) != SNAPSHOT_VERSION:
                raise DataError(f"{path}: snapshot version {int(z['version'])}; run reid-hub discover again")
            keys = [str(k) for k in z["keys"]]
            structure = Constraints(len(keys), {(int(a), int(b)) for a, b in z["must"]},
                                    {(int(a), int(b)) for a, b in z["cannot"]})
            s = json.loads(str(z["settings"]))
            return cls(keys, [str(x) for x in z["species"]], z["i"], z["j"], z["sim"], structure, answers,
                       s["threshold"], s["slope"], s["strategy"])
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"{path}: unreadable discovery snapshot ({exc}); run reid-hub discover again") from exc


def _best_view(parts: int, size: int, p_within: float, neighbour_gains: list[float],
               cost: ReviewCost) -> Optional[tuple[float, float, int, int]]:
    """What a group question shows (up to 12 of the group's parts and every neighbour found) and what it is worth:
    its own parts settle (1 - P(one animal)) x the pairs of the members they stand for, a neighbour P(same) x
    |group| x |neighbour|. Returns (gain per second of the person's time, gain, parts shown, neighbours shown), or
    None when nothing is to gain. (Showing fewer images where the gain per image looked better was tried: the
    P(same) of a group is too optimistic for that choice; simulated on 4 staged collections it gained less.)"""
    own, m = min(parts, GROUP_SHOWN), len(neighbour_gains)
    covered = size * own / parts
    gain = ((1 - p_within) * covered * (covered - 1) / 2 if own > 1 else 0.0) + float(sum(neighbour_gains))
    if gain <= 0 or (own == 1 and m == 0):
        return None
    return gain / cost.seconds(own + m * NEIGHBOUR_SHOWN), gain, own, m


def _members(labels: np.ndarray, n_groups: int) -> list[np.ndarray]:
    order = np.argsort(labels, kind="stable")
    return np.split(order, np.cumsum(np.bincount(labels, minlength=n_groups))[:-1])


def _one_per_part(rows: np.ndarray, comp: np.ndarray, conf: np.ndarray) -> list[int]:
    """One row per must-link part of a group (its most confident), least confident parts first."""
    best: dict[int, int] = {}
    for r in rows.tolist():
        c = int(comp[r])
        if c not in best or conf[r] > conf[best[c]]:
            best[c] = r
    return sorted(best.values(), key=lambda r: (conf[r], r))


def _blocked(comp: np.ndarray, a: np.ndarray, b: np.ndarray, blocked: set[tuple[int, int]]) -> bool:
    """Whether a cannot-link already separates the two groups' parts."""
    ca, cb = set(comp[a].tolist()), set(comp[b].tolist())
    return any((min(x, y), max(x, y)) in blocked for x in ca for y in cb)


def _csv(header: Sequence[str], rows: Any) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


__all__ = ["GroupState", "GroupQuestion", "QUESTION_COLUMNS", "GROUP_SHOWN", "NEIGHBOURS"]
