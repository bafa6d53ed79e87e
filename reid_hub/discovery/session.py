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

from ..data.atomic import write_text_atomic
from ..errors import ConfigError
from .adapter import AdapterConfig, PairAdapter, fit_adapter
from .answers import AnswerLog
from .collection import rows_by_species
from .constraints import Constraints
from .graph import CandidateGraph, GraphConfig, build_graph
from .local_evidence import LocalEvidence, VerifyConfig
from .questions import STRATEGIES
from .state import GroupState

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


class Discovery(GroupState):
    """The individuals of one collection: rows of `table` with their `embeddings` (L2-normalised) and, when
    given, the local verification of its pairs (`local`, see `local_evidence.verify_collection`). The grouping,
    questions and answers are `GroupState`'s; this class adds what needs the embeddings: the candidate graph and
    the adapter."""

    def __init__(self, table: pd.DataFrame, embeddings: np.ndarray, config: DiscoveryConfig = DiscoveryConfig(),
                 structure: Optional[Constraints] = None, answers: Optional[AnswerLog] = None,
                 keys: Optional[Sequence[str]] = None, local: Optional[LocalEvidence] = None) -> None:
        if len(table) != len(embeddings):
            raise ConfigError(f"{len(table)} rows but {len(embeddings)} embeddings")
        self.table = table.reset_index(drop=True)
        self.raw = np.asarray(embeddings, np.float32)
        self.config = config
        self.species_rows = rows_by_species(self.table)
        self.adapters: dict[str, PairAdapter] = {s: PairAdapter() for s in self.species_rows}
        self.local = local or LocalEvidence.empty()
        self.emb = self.raw.copy()
        self.graph = self._build_graph()
        species = self.table["species"].astype(str) if "species" in self.table else [""] * len(self.table)
        super().__init__([str(k) for k in (keys if keys is not None else self.table.get("path", self.table.index))],
                         species, self.graph.i, self.graph.j, self.graph.similarity, structure, answers,
                         config.threshold, config.slope, config.strategy)

    # -- the graph --------------------------------------------------------------------------------------------
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

    def learn(self) -> dict[str, Any]:
        """Refit what the answers teach (with the adapter on: per species, the adapter), rebuild the graph and
        regroup. Returns what was fitted. (A grouping threshold refitted from the answers was tried and dropped:
        the questions are chosen near the decisions, so the answers are a biased sample and the fit moved the
        threshold to its bound; cat ARI fell from 0.739 to 0.716 after 100 answers.)"""
        report: dict[str, Any] = {}
        if self.config.adapter:
            report["adapters"] = self._fit_adapters()
            self.graph = self._build_graph()
            self.set_pairs(self.graph.i, self.graph.j, self.graph.similarity)
        else:
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
        return pd.DataFrame({"path": self.keys, "individual": self.individual_names(),
                             "confidence": np.round(self.confidence(), 4)})

    def question_table(self, limit: int = 50) -> pd.DataFrame:
        """The next questions, best first, with the paths to show."""
        return pd.DataFrame(self.question_rows(limit),
                            columns=["question", "a", "b", "a_row", "b_row", "p_same", "gain", "kind"])

    def summary(self) -> dict[str, Any]:
        s = self.core_summary()
        for sp_name, entry in s["species"].items():
            entry["adapter"] = self.adapters[sp_name].report or {"used": False}
        return {**s, "animals": self.animals(), "config": asdict(self.config)}

    def write(self, out: str | Path, extra: Optional[dict[str, Any]] = None) -> dict[str, Path]:
        """individuals.csv, questions.csv, summary.json and snapshot.npz in `out` (each written atomically)."""
        out = Path(out)
        files = self.write_outputs(out, json.loads(json.dumps({**self.summary(), **(extra or {})}, default=str)))
        self.save(out / "snapshot.npz")
        return {**files, "snapshot": out / "snapshot.npz"}


def write_atomic(text: str, path: Path) -> None:
    """Write a text file so that a reader sees the old or the new file, never a part."""
    write_text_atomic(path, text)


def write_csv_atomic(df: pd.DataFrame, path: Path) -> None:
    """Write a table as CSV atomically (see `write_atomic`)."""
    write_atomic(df.to_csv(index=False), path)


__all__ = ["Discovery", "DiscoveryConfig", "DEFAULT_THRESHOLD", "write_atomic", "write_csv_atomic"]
