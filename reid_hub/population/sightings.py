"""Who was seen where and when: the sightings of a Camtrap DP package with `individualID`, or of a discovery folder
made from one, with the plausible identity assignments that carry the identification's uncertainty.

`Sightings` holds one row per animal observation (observationID, individual, deployment, time) and draws
assignments: from a discovery folder, each decision of its grouping drawn "same" with its P(same) while what people
and the structure settled stays fixed (`GroupState.draw_labels`); from a package alone, each observation classified
by a machine keeps its individual with its `classificationProbability` and is otherwise a separate animal.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from ..data.camtrap_package import read_package
from ..discovery.folder import open_answers
from ..discovery.state import GroupState
from ..errors import DataError


@dataclass
class Sightings:
    """Sightings (`table`: observationID, individual, deployment, time as UTC timestamps, species) and where their
    uncertainty comes from (`state`: a discovery's grouping, row k of its keys = observationID; or
    `probability`: per row, the chance its individual is right)."""

    table: pd.DataFrame
    deployments: pd.DataFrame
    state: Optional[GroupState] = None
    probability: Optional[np.ndarray] = None
    source: str = ""

    @cached_property
    def state_rows(self) -> np.ndarray:
        """Each sighting's row in the discovery's grouping."""
        row = {k: r for r, k in enumerate(self.state.keys)}
        return np.array([row[o] for o in self.table["observationID"]], np.int64)

    def draw(self, rng: np.random.Generator) -> pd.Series:
        """One plausible individual per sighting."""
        if self.state is not None:
            labels = self.state.draw_labels(rng)[self.state_rows]
            return pd.Series([f"draw-{g}" for g in labels], index=self.table.index)
        ind = self.table["individual"].copy()
        if self.probability is not None:
            wrong = rng.random(len(ind)) >= self.probability
            ind[wrong] = [f"other-{k}" for k in np.nonzero(wrong)[0]]
        return ind


def _times(media: pd.DataFrame, obs: pd.DataFrame) -> pd.Series:
    stamp = obs["mediaID"].map(media.set_index("mediaID")["timestamp"]) if "mediaID" in obs else None
    if stamp is None or (stamp.isna() | (stamp == "")).any():
        if "eventStart" not in obs:
            raise DataError("observations: a sighting needs a media timestamp or an eventStart")
        stamp = stamp.where(stamp.notna() & (stamp != ""), obs["eventStart"]) if stamp is not None \
            else obs["eventStart"]
    t = pd.to_datetime(stamp, utc=True, errors="coerce", format="ISO8601")
    if t.isna().any():
        r = int(np.nonzero(t.isna().to_numpy())[0][0])
        raise DataError(f"observations row {int(obs.index[r]) + 1}: timestamp {stamp.iloc[r]!r} is not a date-time")
    return t


def load_sightings(source: str | Path) -> Sightings:
    """The sightings of a discovery folder (made from a Camtrap DP package: its `package/` holds the tables) or of
    a Camtrap DP package whose observations carry `individualID`."""
    p = Path(source)
    if (p / "snapshot.npz").is_file() and (p / "package" / "datapackage.json").is_file():
        pkg = read_package(p / "package")
        state = open_answers(p)
        obs = pkg.tables["observations"]
        obs = obs[obs["observationID"].isin(set(state.keys))]
        names = dict(zip(state.keys, state.individual_names()))
        table = pd.DataFrame({"observationID": obs["observationID"], "individual": obs["observationID"].map(names),
                              "deployment": obs["deploymentID"], "time": _times(pkg.tables["media"], obs),
                              "species": obs.get("scientificName", "")})
        return Sightings(table.reset_index(drop=True), pkg.tables["deployments"], state=state, source="discovery")
    pkg = read_package(p)
    obs = pkg.tables["observations"]
    if "individualID" not in obs:
        raise DataError(f"{source}: observations have no individualID column: discover or identify the package first")
    obs = obs[(obs["individualID"].str.strip() != "") & (obs["observationType"].str.lower() == "animal")]
    if obs.empty:
        raise DataError(f"{source}: no animal observation has an individualID")
    prob = pd.to_numeric(obs.get("classificationProbability", pd.Series("", index=obs.index)), errors="coerce")
    human = obs.get("classificationMethod", pd.Series("", index=obs.index)).str.lower() == "human"
    prob = np.where(human | prob.isna(), 1.0, prob.clip(0, 1)).astype(float)
    table = pd.DataFrame({"observationID": obs["observationID"], "individual": obs["individualID"],
                          "deployment": obs["deploymentID"], "time": _times(pkg.tables["media"], obs),
                          "species": obs.get("scientificName", "")})
    return Sightings(table.reset_index(drop=True), pkg.tables["deployments"], probability=prob, source="package")


__all__ = ["Sightings", "load_sightings"]
