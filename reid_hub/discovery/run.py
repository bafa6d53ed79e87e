"""`reid-hub discover`: a collection folder's whole flow (read, embed once, group, ask, answer, simulate), with
the state a later answer needs kept in the output folder (`state.json`, `embeddings.npz`, `answers.sqlite`)."""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from ..data.atomic import atomic_path
from ..data.camtrap_package import write_package
from ..errors import ConfigError, DataError, ReidHubError
from ..models.table_embedding import embed_table
from .answers import SAME, AnswerLog
from .collection import load_collection
from .constraints import Constraints
from .local_evidence import PairVerifier, VerifyConfig, verify_cached
from .review_feed import feed_review_decisions, write_members
from .session import Discovery, DiscoveryConfig, write_atomic, write_csv_atomic
from .simulate import simulate_reviewer
from .state import ReviewCost

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DiscoverRequest:
    """What `reid-hub discover` was asked to do (validated by the CLI)."""

    table: str
    out: str
    model: Optional[str] = None
    species: Optional[str] = None
    track_column: Optional[str] = None
    frame_column: Optional[str] = None
    answers: int = 0
    answers_from: Optional[str] = None
    batch: int = 10
    config: DiscoveryConfig = DiscoveryConfig()
    gallery: Optional[str] = None
    review: str = "pair"
    seconds_per_image: float = 1.5
    held_out: float = 0.0
    verifier: Optional[PairVerifier] = None  # where pairs are verified (None: in this process)


def _embeddings(model: Any, table: pd.DataFrame, keys: list[str], out: Path) -> np.ndarray:
    """The collection's embeddings, cached in `out/embeddings.npz` for this model and these rows."""
    cache = out / "embeddings.npz"
    fp = model.fingerprint()
    if cache.is_file():
        z = np.load(cache, allow_pickle=False)
        if str(z["fingerprint"]) == fp and list(z["keys"]) == keys:
            return z["emb"]
    emb = embed_table(model, table, progress=True)
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    with atomic_path(cache) as tmp:
        np.savez(tmp, emb=emb, keys=np.array(keys), fingerprint=np.array(fp))
    return emb


def _select(table: pd.DataFrame, req: DiscoverRequest) -> pd.DataFrame:
    for col, flag in ((req.track_column, "--track-column"), (req.frame_column, "--frame-column"),
                      (req.answers_from, "--answers-from")):
        if col and col not in table.columns:
            raise ConfigError(f"{flag} {col!r}: the table has no such column")
    if req.species:
        if (table["species"] != "").any():
            table = table[table["species"] == req.species].reset_index(drop=True)
            if table.empty:
                raise DataError(f"no row of species {req.species!r}")
        else:
            table = table.assign(species=req.species)
    return table


def discover(req: DiscoverRequest) -> dict[str, Any]:
    """Group the collection into individuals, write DIR/individuals.csv, questions.csv and summary.json (and with
    `answers` > 0, DIR/curve.json from the simulated reviewer); returns the summary."""
    from ..models.loading import from_pretrained

    out = Path(req.out)
    out.mkdir(parents=True, exist_ok=True)
    table = load_collection(req.table)
    package = table.attrs.get("camtrap")
    if package is not None:  # a camera-trap package: its events and images are the structure, unless told otherwise
        req = replace(req, track_column=req.track_column or "_track", frame_column=req.frame_column or "_frame")
    table = _select(table, req)
    keys = table["path"].astype(str).tolist()
    model = from_pretrained(req.model) if req.model else from_pretrained()
    t0 = time.perf_counter()
    emb = _embeddings(model, table, keys, out)
    t_embed = time.perf_counter() - t0
    structure = Constraints.from_columns(table, req.track_column, req.frame_column)
    write_atomic(json.dumps({"table": str(Path(req.table).resolve()), "species": req.species,
                             "track_column": req.track_column, "frame_column": req.frame_column,
                             "model": req.model, "model_name": model.config.name,
                             "gallery": str(Path(req.gallery).resolve()) if req.gallery else None,
                             "config": _config_dict(req.config)}, indent=2),
                 out / "state.json")
    answers = AnswerLog(out / "answers.sqlite")
    t0 = time.perf_counter()
    local = verify_cached(out / "verification.npz", table, emb, keys, req.config.verify, verifier=req.verifier)
    t_verify = time.perf_counter() - t0
    t0 = time.perf_counter()
    d = Discovery(table, emb, req.config, structure, answers, keys, local)
    if answers.current():
        d.learn()
    t_group = time.perf_counter() - t0
    extra: dict[str, Any] = {"model": {"name": model.config.name, "fingerprint": model.fingerprint()},
                             "seconds": {"embed": round(t_embed, 2), "verify": round(t_verify, 2),
                                         "group": round(t_group, 2)}}
    if req.answers > 0:
        if not req.answers_from:
            raise ConfigError("--answers needs --answers-from COLUMN (the column that holds the true identities)")
        timings: list[float] = []
        curve = simulate_reviewer(d, table[req.answers_from].tolist(), req.answers, req.batch,
                                  actor=f"simulated:{req.answers_from}", timings=timings, review=req.review,
                                  cost=ReviewCost(per_image=req.seconds_per_image), held_out=req.held_out)
        write_atomic(json.dumps(curve, indent=2), out / "curve.json")
        extra["curve"] = str(out / "curve.json")
        if timings:
            extra["seconds_per_answer"] = {"median": round(float(np.median(timings)), 4),
                                           "max": round(float(np.max(timings)), 4)}
    if req.gallery:
        extra["gallery"] = propose_to_gallery(d, req.gallery, model, Path(req.table).name, out)
        if extra["gallery"]["review_answers"]["recorded"]:  # auto-accepted proposals already decided something
            d.learn()
    if package is not None:
        extra["package"] = {**table.attrs.get("camtrap_report", {}),
                            "written": str(write_package(package, out / "package",
                                                         package_assignments(d, f"reid-hub {model.config.name}")))}
    d.write(out, extra)
    return {**d.summary(), **extra}


def package_assignments(d: Discovery, machine: str) -> dict[str, dict[str, Any]]:
    """observationID -> the Camtrap DP fields that say who it is and how sure: `classificationMethod` human for a
    row a person's "same" answer settled (`classifiedBy` that person), machine otherwise (`classifiedBy` the
    model), `classificationProbability` the row's confidence."""
    by_person: dict[int, str] = {}
    if d.answers is not None:
        for (a, b), ans in d.answers.in_force().items():
            if ans.answer == SAME and a in d.row_of and b in d.row_of:
                by_person[d.row_of[a]] = by_person[d.row_of[b]] = ans.actor
    conf = d.confidence()
    return {key: {"individualID": name, "classificationMethod": "human" if r in by_person else "machine",
                  "classifiedBy": by_person.get(r, machine), "classificationProbability": round(float(conf[r]), 4)}
            for r, (key, name) in enumerate(zip(d.keys, d.individual_names()))}


def propose_to_gallery(d: Discovery, gallery_dir: str, model: Any, source: str, out: Path,
                       max_members: int = 12) -> dict[str, Any]:
    """Send every discovered individual to the gallery's review queue: one proposal per group (up to
    `max_members` of its images, the one nearest the group's centre as its picture) with the gallery's ranked
    candidates and P(same); the gallery enrolls only what it auto-accepts (auto-accept is off by default).
    Writes out/gallery.csv (individual, proposal, decision, best candidate) and out/gallery_members.csv (the
    rows of each proposal, and which of them are its images: the review decisions taken on them later, take-outs
    included, come back as answers) and returns counts."""
    from ..data.tables import read_sample
    from ..gallery import open_gallery, review

    g = open_gallery(gallery_dir, model, create=False)
    ind = d.individuals()
    rows_out = []
    members: dict[int, list[str]] = {}
    shown: dict[int, list[str]] = {}
    try:
        for name, members_rows in ind.groupby("individual", sort=False).indices.items():
            members_rows = np.asarray(members_rows)
            pick = members_rows[np.linspace(0, len(members_rows) - 1,
                                            min(max_members, len(members_rows))).round().astype(int)]
            emb = d.raw[pick]
            rep = int(np.argmax(emb @ emb.mean(axis=0)))
            images = [read_sample(r) for r in d.table.iloc[pick].to_dict("records")]
            species = str(d.table["species"].iloc[pick[0]]) if "species" in d.table else ""
            res = review.propose(g, emb, images[rep], species=species, source=f"discover:{source}#{name}",
                                 cluster=name, images=images)
            members[int(res["proposal_id"])] = [d.keys[int(r)] for r in members_rows]
            shown[int(res["proposal_id"])] = [d.keys[int(r)] for r in pick]
            best = review.get(g, res["proposal_id"]).current
            rows_out.append({"individual": name, "proposal": res["proposal_id"], "status": res["status"],
                             "decision": res["decision"], "candidate": (best or {}).get("individual_id", ""),
                             "candidate_name": (best or {}).get("display_name", ""),
                             "p_same": (best or {}).get("probability")})
        write_members(out, members, shown)
        fed = feed_review_decisions(d.answers, g, out) if d.answers is not None else {"recorded": 0, "withdrawn": 0}
    finally:
        g.close()
    table = pd.DataFrame(rows_out)
    write_csv_atomic(table, out / "gallery.csv")
    return {"proposals": int((table["status"] == "pending").sum()) if len(table) else 0,
            "auto_accepted": int((table["status"] != "pending").sum()) if len(table) else 0,
            "decisions": table["decision"].value_counts().to_dict() if len(table) else {}, "review_answers": fed}


def _config_dict(cfg: DiscoveryConfig) -> dict[str, Any]:
    return {"threshold": cfg.threshold, "adapter": cfg.adapter, "strategy": cfg.strategy,
            "verify": cfg.verify.matcher}


def discovery_gallery(folder: str | Path) -> Optional[Path]:
    """The gallery a discovery folder sent its individuals to (`--gallery`), or None."""
    state = Path(folder) / "state.json"
    g = json.loads(state.read_text()).get("gallery") if state.is_file() else None
    return Path(g) if g else None


def open_discovery(folder: str | Path) -> Discovery:
    """The discovery kept in an output folder of `reid-hub discover`, with its answers applied."""
    out = Path(folder)
    state = out / "state.json"
    if not state.is_file():
        raise DataError(f"{folder}: not a discovery folder (no state.json); run reid-hub discover first")
    s = json.loads(state.read_text())
    req = DiscoverRequest(s["table"], str(out), s.get("model"), s.get("species"), s.get("track_column"),
                          s.get("frame_column"))
    table = _select(load_collection(s["table"]), req)
    keys = table["path"].astype(str).tolist()
    z = np.load(out / "embeddings.npz", allow_pickle=False)
    if list(z["keys"]) != keys:
        raise DataError(f"{folder}: the table changed since it was discovered; run reid-hub discover again")
    saved = s.get("config", {})
    cfg = replace(DiscoveryConfig(), **{k: v for k, v in saved.items() if k in ("threshold", "adapter", "strategy")},
                  verify=VerifyConfig(matcher=saved.get("verify", "none")))  # folders from before verification
    d = Discovery(table, z["emb"], cfg, Constraints.from_columns(table, s.get("track_column"),
                                                                  s.get("frame_column")),
                  AnswerLog(out / "answers.sqlite"), keys,
                  verify_cached(out / "verification.npz", table, z["emb"], keys, cfg.verify))
    if s.get("gallery") and d.answers is not None:  # decisions taken in the gallery's review queue since
        from ..gallery.store import Gallery

        try:
            g = Gallery(s["gallery"], s.get("model_name", ""), str(z["fingerprint"]), int(z["emb"].shape[1]),
                        create=False)
        except ReidHubError as exc:  # a gallery moved or rebuilt: the answers already fed stay, nothing new
            log.warning("review decisions not read: %s", exc)
        else:
            try:
                feed_review_decisions(d.answers, g, out)
            finally:
                g.close()
    if d.answered():
        d.learn()
    return d


__all__ = ["DiscoverRequest", "discover", "open_discovery", "discovery_gallery", "package_assignments"]
