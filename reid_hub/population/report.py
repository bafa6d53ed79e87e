"""`reid-hub population`: capture histories and closed-population abundance from sightings, treating identities as
certain and carrying the identification's uncertainty, with the files R users load and two plots.

Writes POP/population.json (`individuals_seen`, `occasions`, `estimates` [{method, N, lower, upper}],
`with_identification_uncertainty` {N, lower, upper, draws}), POP/capture_history.csv, POP/secr_captures.csv and
POP/secr_traps.csv (secr's capthist text forms), POP/camtrapr_records.csv (camtrapR's record table),
POP/discovery_curve.png and POP/capture_history.png.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..data.atomic import write_json_atomic, write_text_atomic
from ..errors import ConfigError
from .estimators import ESTIMATORS, Z, choose_method, estimate_all
from .sightings import Sightings, load_sightings

log = logging.getLogger(__name__)

UNITS = {"m": "min", "h": "h", "d": "D", "w": "W"}


@dataclass(frozen=True)
class PopulationRequest:
    """What `reid-hub population` was asked (validated at the edge)."""

    source: str
    out: str
    occasion: str = "1d"
    by: str = "none"
    draws: int = 200
    method: str = "auto"
    seed: int = 0


def parse_occasion(text: str) -> pd.Timedelta:
    """"1d", "7d", "12h", "30m", "2w" as a duration."""
    m = re.fullmatch(r"\s*(\d+)\s*([mhdw])\s*", str(text))
    if not m or int(m.group(1)) < 1:
        raise ConfigError(f"an occasion is a whole number of minutes, hours, days or weeks (30m, 12h, 1d, 7d, 2w), "
                          f"got {text!r}")
    return pd.Timedelta(int(m.group(1)), UNITS[m.group(2)])


def occasion_of(times: pd.Series, start: pd.Timestamp, occasion: pd.Timedelta) -> np.ndarray:
    """The occasion (0, 1, ...) of each time, counted from `start`."""
    return ((times - start) // occasion).astype(int).to_numpy()


def capture_history(table: pd.DataFrame, individuals: pd.Series, occasion: pd.Timedelta,
                    start: pd.Timestamp, occasions: int) -> pd.DataFrame:
    """Individuals x occasions (0/1): seen at least once in that occasion."""
    h = pd.crosstab(individuals.to_numpy(), occasion_of(table["time"], start, occasion)).reindex(
        columns=range(occasions), fill_value=0)
    return (h > 0).astype(int)


def pooled_estimate(histories: list[np.ndarray], method: Callable[[np.ndarray], Any], rng: np.random.Generator,
                    per_draw: int = 20) -> dict[str, Any]:
    """Point estimates over the drawn identity assignments, each with its own sampling error (log-normal from its
    interval): the median of the draws' estimates and the 2.5 and 97.5 percentiles of the pooled samples."""
    points, pooled = [], []
    for h in histories:
        e = method(h)
        if e.N is None:
            continue
        points.append(e.N)
        lo, hi = max(e.lower or e.N, 1e-9), max(e.upper or e.N, 1e-9)
        sigma = (np.log(hi) - np.log(lo)) / (2 * Z) if hi > lo else 0.0
        centre = np.log(max(e.N, 1e-9))
        pooled.extend(np.maximum(np.exp(centre + sigma * rng.standard_normal(per_draw)), e.lower or 0))
    if not points:
        return {"N": None, "lower": None, "upper": None, "draws": len(histories),
                "note": "no draw supports the estimator"}
    return {"N": round(float(np.median(points)), 2), "lower": round(float(np.percentile(pooled, 2.5)), 2),
            "upper": round(float(np.percentile(pooled, 97.5)), 2), "draws": len(histories)}


def estimate(s: Sightings, occasion: pd.Timedelta, drawn: list[pd.Series], method: str,
             rng: np.random.Generator) -> dict[str, Any]:
    """The estimates of one set of sightings: identities as certain, and over the plausible assignments `drawn`
    (each an individual per sighting, indexed like `s.table`)."""
    if method not in ESTIMATORS and method != "auto":
        raise ConfigError(f"method must be auto or one of {', '.join(ESTIMATORS)}, got {method!r}")
    start = s.table["time"].min().floor("D")
    occasions = int((s.table["time"].max() - start) // occasion) + 1
    hist = capture_history(s.table, s.table["individual"], occasion, start, occasions)
    h = hist.to_numpy()
    auto, het = choose_method(h)
    chosen = auto if method == "auto" else method
    histories = [capture_history(s.table, d, occasion, start, occasions).to_numpy() for d in drawn]
    return {"individuals_seen": int(len(hist)), "occasions": occasions, "start": start.isoformat(),
            "estimates": [e.to_dict() for e in estimate_all(h)],
            "with_identification_uncertainty": {"method": chosen, "chosen_by": "auto" if method == "auto" else "user",
                                                "heterogeneity_p": round(het, 4),
                                                **pooled_estimate(histories, ESTIMATORS[chosen], rng)},
            "history": hist}


def population(req: PopulationRequest, progress: bool = True) -> dict[str, Any]:
    """Read the sightings of `req.source`, estimate, write POP; returns population.json's content."""
    if req.by not in ("none", "deployment"):
        raise ConfigError(f"--by is none or deployment, got {req.by!r}")
    if req.draws < 1:
        raise ConfigError("--draws must be at least 1")
    occasion = parse_occasion(req.occasion)
    s = load_sightings(req.source)
    out = Path(req.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(req.seed)
    drawn = [s.draw(rng) for _ in tqdm(range(req.draws), desc="identity draws", disable=not progress)]
    res = estimate(s, occasion, drawn, req.method, rng)
    hist = res.pop("history")
    body: dict[str, Any] = {"source": str(req.source), "identities_from": s.source, "occasion": req.occasion,
                            **res}
    if req.by == "deployment":  # the same drawn assignments, each deployment's sightings of them
        body["by_deployment"] = {}
        for dep, part in s.table.groupby("deployment", sort=True):
            r = estimate(Sightings(part, s.deployments), occasion, [d.loc[part.index] for d in drawn], req.method,
                         rng)
            r.pop("history")
            body["by_deployment"][str(dep)] = r
    write_text_atomic(out / "capture_history.csv", hist.rename(columns=lambda c: f"occasion_{c}")
                      .rename_axis("individual").reset_index().to_csv(index=False))
    _exports(s, occasion, pd.Timestamp(res["start"]), out)
    _plots(s, hist, out)
    write_json_atomic(out / "population.json", body)
    return body


def _exports(s: Sightings, occasion: pd.Timedelta, start: pd.Timestamp, out: Path) -> None:
    """secr's capthist (captures and traps) and camtrapR's record table."""
    t = s.table
    occ = occasion_of(t["time"], start, occasion) + 1  # secr counts occasions from 1
    caps = pd.DataFrame({"Session": 1, "ID": t["individual"], "Occasion": occ, "Detector": t["deployment"]})
    write_text_atomic(out / "secr_captures.csv", caps.to_csv(index=False))
    deps = s.deployments
    traps = pd.DataFrame({"Detector": deps["deploymentID"], "x": deps.get("longitude", ""),
                          "y": deps.get("latitude", "")})
    write_text_atomic(out / "secr_traps.csv", traps.to_csv(index=False))
    rec = pd.DataFrame({"Station": t["deployment"], "Species": t["species"], "Individual": t["individual"],
                        "DateTimeOriginal": t["time"].dt.strftime("%Y-%m-%d %H:%M:%S"),
                        "Date": t["time"].dt.strftime("%Y-%m-%d"), "Time": t["time"].dt.strftime("%H:%M:%S")})
    write_text_atomic(out / "camtrapr_records.csv", rec.sort_values("DateTimeOriginal").to_csv(index=False))


def _plots(s: Sightings, hist: pd.DataFrame, out: Path) -> None:
    """discovery_curve.png (individuals seen so far over time) and capture_history.png (the history as a map)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = s.table.sort_values("time")
    first = ~t["individual"].duplicated()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.step(t["time"], first.cumsum(), where="post")
    ax.set_xlabel("time")
    ax.set_ylabel("individuals seen")
    ax.set_title("Discovery curve")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(out / "discovery_curve.png", dpi=100)
    plt.close(fig)
    order = hist.to_numpy().argmax(axis=1).argsort(kind="stable")
    fig, ax = plt.subplots(figsize=(6, max(2.5, min(12, 0.08 * len(hist)))))
    ax.imshow(hist.to_numpy()[order], aspect="auto", interpolation="nearest", cmap="Greys")
    ax.set_xlabel("occasion")
    ax.set_ylabel("individual (by first capture)")
    ax.set_title("Capture history")
    fig.tight_layout()
    fig.savefig(out / "capture_history.png", dpi=100)
    plt.close(fig)




__all__ = ["PopulationRequest", "population", "estimate", "capture_history", "occasion_of", "parse_occasion",
           "pooled_estimate"]
