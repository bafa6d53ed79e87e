"""A Camtrap DP package identified against a gallery: each animal observation's crop identified, the package
written back with `individualID` where the gallery's decision policy accepts at its stated precision."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..data.camtrap_package import package_collection, read_package, write_package
from ..data.tables import read_sample
from ..models.table_embedding import embed_table
from ..scoring.decisions import ACCEPT
from .identification import identify
from .store import Gallery

log = logging.getLogger(__name__)


def identify_package(gallery: Gallery, model: Any, package: str | Path, out: str | Path, k: int = 5,
                     progress: bool = True) -> dict[str, Any]:
    """Identify every animal observation of `package` in `gallery` and write `out`/package: `individualID` the
    gallery's individual where the decision is accept (the policy's held-out precision reaches the gallery's
    target, as with auto-accept; nothing is enrolled), `classificationMethod` machine, `classifiedBy` reid-hub and
    the model, `classificationProbability` the best candidate's P(same) for every observation. Returns counts."""
    pkg = read_package(package)
    table, report = package_collection(pkg)
    emb = embed_table(model, table, progress=progress)
    assigned: dict[str, dict[str, Any]] = {}
    decisions: dict[str, int] = {}
    for r, row in enumerate(tqdm(table.to_dict("records"), desc="identify", disable=not progress)):
        res = identify(gallery, emb[r], read_sample(row), species=row["species"] or None, k=k, auto_accept=True)
        decisions[res.decision] = decisions.get(res.decision, 0) + 1
        best = res.matches[0] if res.matches else None
        fields: dict[str, Any] = {"classificationMethod": "machine", "classifiedBy": f"reid-hub {model.config.name}",
                                  "classificationProbability": None if res.probability is None
                                  else round(float(res.probability), 4)}
        if res.decision == ACCEPT and best is not None:
            fields["individualID"] = best.individual_id
        assigned[row["observationID"]] = fields
    written = write_package(pkg, Path(out) / "package", assigned)
    return {**report, "decisions": decisions, "identified": decisions.get(ACCEPT, 0), "written": str(written)}


__all__ = ["identify_package"]
