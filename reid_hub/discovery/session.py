"""Discovery of the individuals of an unlabelled collection, with people in the loop.

A `Discovery` owns one collection's embeddings, its candidate graph (per species), the constraints that come from
its structure (tracks, frames) and from people's answers, and the grouping that follows. `answer` records an
answer and regroups at once; `learn` refits what the answers teach (with the adapter on: per species, an
adapter on the embeddings) and rebuilds the graph.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.special import expit

from ..data.atomic import write_text_atomic
from ..data.union_find import UnionFind
from ..errors import ConfigError
from .adapter import AdapterConfig, PairAdapter, fit_adapter
from .answers import DIFFERENT, SAME, AnswerLog
from .collection import rows_by_species
from .constraints import Constraints
from .graph import CandidateGraph, GraphConfig, build_graph
from .grouping import by_first_row, linkage
from .local_evidence import LocalEvidence, VerifyConfig
from .questions import STRATEGIES, Question, random_questions, rank_questions

log = logging.getLogger(__name__)

#: grouping threshold on the Jaccard similarity used before any answer: chosen on the staged species with
#: leave-one-species-out (benchmarks/discovery.py), never on the collection at hand
DEFAULT_THRESHOLD = 0.25
#: width of the logistic that turns a Jaccard similarity into P(same)
DEFAULT_SLOPE = 0.05


@dataclass(frozen=True)
class DiscoveryConfig:
    """How a collection is grouped and which questions are asked."""

    graph: GraphConfig = field(default_factory=GraphConfig)
    threshold: float = DEFAULT_THRESHOLD
    slope: float = DEFAULT_SLOPE
    adapter: bool = False
    adapter_config: AdapterConfig = field(default_factory=AdapterConfig)
    strategy: str = "gain"
    verify: VerifyConfig = field(default_factory=VerifyConfig)

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"question strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if not 0 < self.threshold < 1:
            raise ConfigError(f"threshold must lie in (0, 1), got {self.threshold}")


class Discovery:
    """The individuals of one collection: rows of `table` with their `embeddings` (L2-normalised) and, when
    given, the local verification of its pairs (`local`, see `local_evidence.verify_collection`)."""

    def __init__(self, table: pd.DataFrame, embeddings: np.ndarray, config: DiscoveryConfig = DiscoveryConfig(),
                 structure: Optional[Constraints] = None, answers: Optional[AnswerLog] = None,
                 keys: Optional[Sequence[str]] = None, local: Optional[LocalEvidence] = None) -> None:
        if len(table) != len(embeddings):
            raise ConfigError(f"{len(table)} rows but {len(embeddings)} embeddings")
        self.table = table.reset_index(drop=True)
        self.raw = np.asarray(embeddings, np.float32)
        self.config = config
        self.structure = structure or Constraints(len(table))
        self.answers = answers
        self.keys = [str(k) for k in (keys if keys is not None else self.table.get("path", self.table.index))]
        if len(set(self.keys)) != len(self.keys):
            raise ConfigError("every row needs a distinct key (its path); the table repeats one")
        self.row_of = {k: r for r, k in enumerate(self.keys)}
        self.species_rows = rows_by_species(self.table)
        self.adapters: dict[str, PairAdapter] = {s: PairAdapter() for s in self.species_rows}
        self.local = local or LocalEvidence.empty()
        self.emb = self.raw.copy()
        self.graph = self._build_graph()
        self.labels = self.regroup()

    # -- state ------------------------------------------------------------------------------------------------
    def _build_graph(self) -> CandidateGraph:
        """One candidate graph over all rows, edges only within a species, with the local evidence."""
        g = self._embedding_graph()
        if len(self.local):
            g = g.with_local(self.emb, self.local.i, self.local.j, self.local.p_same(self.config.verify))
        return g

    def _embedding_graph(self) -> CandidateGraph:
        parts = []
        for s, rows in self.species_rows.items():
            self.emb[rows] = self.adapters[s](self.raw[rows])
            if len(rows) >= 2:
                g = build_graph(self.emb[rows], self.config.graph)
                parts.append((rows, g))
        n = len(self.raw)
        if not parts:
            return CandidateGraph(n, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0),
                                  sp.csr_matrix((n, n)))
        i = np.concatenate([rows[g.i] for rows, g in parts])
        j = np.concatenate([rows[g.j] for rows, g in parts])
        order = np.lexsort((j, i))
        coos = [(rows, g.encoding.tocoo()) for rows, g in parts]
        enc = sp.csr_matrix((np.concatenate([c.data for _, c in coos]),
                             (np.concatenate([rows[c.row] for rows, c in coos]),
                              np.concatenate([rows[c.col] for rows, c in coos]))), shape=(n, n))
        return CandidateGraph(n, i[order], j[order], np.concatenate([g.cosine for _, g in parts])[order],
                              np.concatenate([g.jaccard for _, g in parts])[order], enc)

    def answered(self, current: Optional[dict[tuple[str, str], str]] = None) -> list[tuple[int, int, bool]]:
        """(row, row, same) of every answer in force (skips left out; rows not in this table ignored); `current`:
        the log's answers in force when the caller has already read them."""
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
        """P(same individual) of pairs from their similarity (the stronger of Jaccard and local P(same))."""
        return expit((np.asarray(similarity, float) - self.config.threshold) / self.config.slope)

    # -- grouping ---------------------------------------------------------------------------------------------
    def regroup(self) -> np.ndarray:
        """Group every row under the current constraints; returns and keeps the labels (0..m-1)."""
        answered = self.answered()
        base = self.structure.copy()
        for a, b, same in answered:
            if not same:
                base.add_cannot(a, b)
        g = self.graph
        self.link = linkage(len(self.raw), g.i, g.j, g.similarity, self.config.threshold, base)
        labels = self.link.labels
        # a "same" answer joins the two groups it links (unless the joined group would hold a cannot-link)
        comp = self.constraints(answered).components()
        cannot_groups: set[tuple[int, int]] = set()
        for a, b in base.cannot:
            cannot_groups.add((int(labels[a]), int(labels[b])))
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
        merged = np.array([uf.find(int(g)) for g in labels], np.int64) if len(labels) else labels
        # rows of one must-link component stay together: a component that the linkage left apart follows the
        # group of its first row
        first: dict[int, int] = {}
        for r in range(len(merged)):
            first.setdefault(int(comp[r]), int(merged[r]))
            merged[r] = first[int(comp[r])]
        self.labels = by_first_row(merged)
        return self.labels

    def confidence(self) -> np.ndarray:
        """Per row: the mean P(same) to the members of its group among its candidate pairs; for a row alone in
        its group, 1 - the largest P(same) to any other row."""
        p = self.p_same(self.graph.similarity)
        n = len(self.raw)
        tot, cnt, best_other = np.zeros(n), np.zeros(n), np.zeros(n)
        same = self.labels[self.graph.i] == self.labels[self.graph.j]
        for ends in (self.graph.i, self.graph.j):
            np.add.at(tot, ends[same], p[same])
            np.add.at(cnt, ends[same], 1)
            np.maximum.at(best_other, ends[~same], p[~same])
        return np.where(cnt > 0, tot / np.maximum(cnt, 1), 1 - best_other)

    # -- questions and answers --------------------------------------------------------------------------------
    def questions(self, limit: int = 50, strategy: Optional[str] = None, seed: int = 0) -> list[Question]:
        """The best pair questions to ask next (`strategy` "random": the baseline)."""
        current = self.answers.current() if self.answers is not None else {}  # one read of the log
        in_force = self.answered(current)
        c = self.constraints(in_force)
        comp = c.components()
        blocked = c.cannot_between(comp)
        answered = [(a, b) for a, b, _ in in_force]
        asked = set()
        for a, b in current:  # skips included: a skipped question is not asked again
            if a in self.row_of and b in self.row_of:
                ra, rb = self.row_of[a], self.row_of[b]
                asked.add((min(ra, rb), max(ra, rb)))
        if (strategy or self.config.strategy) == "random":
            return random_questions(self.graph.i, self.graph.j, self.p_same(self.graph.similarity), self.labels, comp,
                                    blocked, asked, limit, seed)
        n = len(self.raw)
        sim = sp.coo_matrix((np.concatenate([self.graph.similarity, self.graph.similarity]),
                             (np.concatenate([self.graph.i, self.graph.j]),
                              np.concatenate([self.graph.j, self.graph.i]))), shape=(n, n)).tocsr()
        return rank_questions(self.link, self.labels, self.p_same, sim, comp, blocked, asked, answered, limit)

    def answer(self, a: int, b: int, value: str, actor: str = "local") -> np.ndarray:
        """Record a person's answer about rows a and b, regroup at once, and return the new labels."""
        if self.answers is None:
            raise ConfigError("this discovery keeps no answers (open it with a folder)")
        for r in (a, b):
            if not 0 <= int(r) < len(self.keys):
                raise ConfigError(f"row {r} is not in this collection of {len(self.keys)} rows")
        self.answers.record(self.keys[int(a)], self.keys[int(b)], value, actor)
        return self.regroup()

    def undo(self, actor: str = "local") -> np.ndarray:
        """Take back the latest answer and regroup."""
        if self.answers is not None:
            self.answers.undo(actor)
        return self.regroup()

    def learn(self) -> dict[str, Any]:
        """Refit what the answers teach (with the adapter on: per species, the adapter), rebuild the graph and
        regroup. Returns what was fitted. (A grouping threshold refitted from the answers was tried and dropped:
        the questions are chosen near the decisions, so the answers are a biased sample and the fit moved the
        threshold to its bound; cat ARI fell from 0.739 to 0.716 after 100 answers.)"""
        report: dict[str, Any] = {}
        if self.config.adapter:
            report["adapters"] = self._fit_adapters()
            self.graph = self._build_graph()
        self.regroup()
        return report

    def _fit_adapters(self) -> dict[str, Any]:
        """Per species: training pairs are every pair within a must-link component and every pair across two
        components that a cannot-link separates (structure and answers alike)."""
        c = self.constraints()
        comp = c.components()
        out: dict[str, Any] = {}
        for s, rows in self.species_rows.items():
            local = {int(r): k for k, r in enumerate(rows)}
            by_comp: dict[int, list[int]] = {}
            for r in rows.tolist():
                by_comp.setdefault(int(comp[r]), []).append(local[r])
            a, b, y = [], [], []
            for mem in by_comp.values():
                for x in range(len(mem)):
                    for z in range(x + 1, len(mem)):
                        a.append(mem[x]); b.append(mem[z]); y.append(True)
            for ca, cb in c.cannot_between(comp):
                ma, mb = by_comp.get(ca), by_comp.get(cb)
                if ma and mb:
                    for x in ma:
                        for z in mb:
                            a.append(x); b.append(z); y.append(False)
            ad = fit_adapter(self.raw[rows], np.array(a, np.int64), np.array(b, np.int64), np.array(y, bool),
                             comp[rows], self.config.adapter_config)
            self.adapters[s] = ad
            out[s] = ad.report
        return out

    # -- outputs ----------------------------------------------------------------------------------------------
    def individuals(self) -> pd.DataFrame:
        """One row per input row, in input order: path, individual, confidence."""
        species = self.table["species"].astype(str) if "species" in self.table else pd.Series([""] * len(self.raw))
        names = [f"{sp}-{g:04d}" if sp else f"ind-{g:04d}" for sp, g in zip(species, self.labels)]
        return pd.DataFrame({"path": self.keys, "individual": names, "confidence": np.round(self.confidence(), 4)})

    def question_table(self, limit: int = 50) -> pd.DataFrame:
        """The next questions, best first, with the paths to show."""
        qs = self.questions(limit)
        return pd.DataFrame([{"question": k + 1, "a": self.keys[q.a], "b": self.keys[q.b], "a_row": q.a,
                              "b_row": q.b, "p_same": round(q.p_same, 4), "gain": round(q.gain, 3), "kind": q.kind}
                             for k, q in enumerate(qs)],
                            columns=["question", "a", "b", "a_row", "b_row", "p_same", "gain", "kind"])

    def summary(self) -> dict[str, Any]:
        ans = self.answered()
        c = self.constraints(ans)
        return {"images": int(len(self.raw)), "individuals": int(self.labels.max() + 1) if len(self.labels) else 0,
                "species": {s: {"images": int(len(r)), "individuals": int(len(np.unique(self.labels[r]))),
                                "adapter": self.adapters[s].report or {"used": False}}
                            for s, r in self.species_rows.items()},
                "threshold": self.config.threshold,
                "answers": {"same": int(sum(s for *_, s in ans)), "different": int(sum(not s for *_, s in ans))},
                "constraints": {"must_link": len(c.must), "cannot_link": len(c.cannot)},
                "candidate_pairs": int(len(self.graph)), "config": asdict(self.config)}

    def write(self, out: str | Path, extra: Optional[dict[str, Any]] = None) -> dict[str, Path]:
        """individuals.csv, questions.csv and summary.json in `out` (each written atomically)."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        files = {"individuals": out / "individuals.csv", "questions": out / "questions.csv",
                 "summary": out / "summary.json"}
        write_csv_atomic(self.individuals(), files["individuals"])
        write_csv_atomic(self.question_table(), files["questions"])
        write_atomic(json.dumps({**self.summary(), **(extra or {})}, indent=2, default=str), files["summary"])
        return files


def write_atomic(text: str, path: Path) -> None:
    """Write a text file so that a reader sees the old or the new file, never a part."""
    write_text_atomic(path, text)


def write_csv_atomic(df: pd.DataFrame, path: Path) -> None:
    """Write a table as CSV atomically (see `write_atomic`)."""
    write_atomic(df.to_csv(index=False), path)


__all__ = ["Discovery", "DiscoveryConfig", "DEFAULT_THRESHOLD", "write_atomic", "write_csv_atomic"]
