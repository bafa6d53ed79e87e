"""Camtrap DP 1.0 packages (deployments, media, observations) read as a collection of animal crops, and written
back with `individualID` and how sure it is.

Each media-level animal observation with a bounding box is one row (the crop of its image); an observation
without a box is the whole image (counted in the report). Structure rides along: an event whose every image holds
one animal observation of count 1 is one animal (`_track`, must-links); the observations of one image are
different animals (`_frame`, cannot-links); deployment and timestamp are kept for capture histories. A package
that is not well formed is a `DataError` naming the table, the row (1 = the first data row) and the field; a path
that leaves the package's folder is refused.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

import pandas as pd
from PIL import Image, UnidentifiedImageError

from ..errors import DataError
from .atomic import atomic_folder

log = logging.getLogger(__name__)

TABLES = ("deployments", "media", "observations")
#: the columns each table must have
REQUIRED = {"deployments": ("deploymentID",), "media": ("mediaID", "deploymentID", "timestamp", "filePath"),
            "observations": ("observationID", "deploymentID", "observationType")}
BOX = ("bboxX", "bboxY", "bboxWidth", "bboxHeight")
#: the observation fields written back (added to an inline schema that lacks them)
WRITTEN = {"individualID": "string", "classificationMethod": "string", "classifiedBy": "string",
           "classificationProbability": "number"}


@dataclass
class CamtrapPackage:
    """A package's folder, descriptor and tables (every cell as text, as in the files)."""

    root: Path
    descriptor: dict[str, Any]
    tables: dict[str, pd.DataFrame]
    paths: dict[str, str] = field(default_factory=dict)

    @property
    def descriptor_path(self) -> Path:
        return self.root / "datapackage.json"


def _inside(root: Path, rel: str, what: str) -> Path:
    """`rel` resolved inside `root`; DataError for an absolute path, a URL or one that leaves the folder."""
    if not rel or "://" in rel or Path(rel).is_absolute():
        raise DataError(f"{what}: {rel!r} is not a path inside the package")
    f = (root / rel).resolve()
    if root.resolve() not in f.parents and f != root.resolve():
        raise DataError(f"{what}: {rel!r} leaves the package's folder")
    return f


def read_package(path: str | Path) -> CamtrapPackage:
    """The package at `path` (its datapackage.json, or the folder holding it), its three tables checked: required
    tables and columns, unique IDs, references between tables."""
    p = Path(path)
    descriptor_file = p / "datapackage.json" if p.is_dir() else p
    if not descriptor_file.is_file():
        raise DataError(f"{path}: no datapackage.json")
    root = descriptor_file.parent
    try:
        descriptor = json.loads(descriptor_file.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{descriptor_file}: not a JSON data package ({exc})") from exc
    if not isinstance(descriptor, dict) or not isinstance(descriptor.get("resources"), list):
        raise DataError(f"{descriptor_file}: a data package needs a list of resources")
    by_name = {r.get("name"): r for r in descriptor["resources"] if isinstance(r, dict)}
    tables, paths = {}, {}
    for name in TABLES:
        res = by_name.get(name)
        if res is None:
            raise DataError(f"{descriptor_file}: the package has no {name!r} table (Camtrap DP needs deployments, "
                            f"media and observations)")
        rel = res.get("path")
        if not isinstance(rel, str):
            raise DataError(f"{name}: the resource's path must be one CSV file")
        f = _inside(root, rel, f"{name} table")
        if not f.is_file():
            raise DataError(f"{name}: table file {rel!r} not found")
        try:
            df = pd.read_csv(f, dtype=str, keep_default_na=False)
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise DataError(f"{name}: {rel!r} is not a readable CSV ({exc})") from exc
        missing = [c for c in REQUIRED[name] if c not in df.columns]
        if missing:
            raise DataError(f"{name}: no {missing[0]!r} column")
        key = REQUIRED[name][0]
        dup = df[key][df[key].duplicated()]
        if len(dup):
            raise DataError(f"{name} row {int(dup.index[0]) + 1}: {key} {dup.iloc[0]!r} appears twice")
        empty = df[key].str.strip() == ""
        if empty.any():
            raise DataError(f"{name} row {int(empty.idxmax()) + 1}: {key} is empty")
        tables[name], paths[name] = df, rel
    deps = set(tables["deployments"]["deploymentID"])
    media = set(tables["media"]["mediaID"])
    for name, col, known, target in (("media", "deploymentID", deps, "deployments"),
                                     ("observations", "deploymentID", deps, "deployments"),
                                     ("observations", "mediaID", media, "media")):
        if col not in tables[name]:
            continue
        values = tables[name][col]
        bad = values[(values != "") & ~values.isin(known)]
        if len(bad):
            raise DataError(f"{name} row {int(bad.index[0]) + 1}: {col} {bad.iloc[0]!r} is not in {target}")
    return CamtrapPackage(root, descriptor, tables, paths)


def _box(row: Mapping[str, str], r: int) -> Optional[tuple[float, float, float, float]]:
    """The relative box (x, y, w, h) of an observation, None when it has none."""
    cells = [str(row.get(c, "")).strip() for c in BOX]
    if not any(cells):
        return None
    for c, v in zip(BOX, cells):
        if not v:
            raise DataError(f"observations row {r}: {c} is empty while the other box fields are set")
    try:
        x, y, w, h = (float(v) for v in cells)
    except ValueError:
        raise DataError(f"observations row {r}: the box {cells} is not four numbers") from None
    for c, v in zip(BOX, (x, y, w, h)):
        if not v == v or v < 0 or v > 1:
            raise DataError(f"observations row {r}: {c} = {v} is outside 0..1 (Camtrap DP boxes are relative)")
    if w <= 0 or h <= 0:
        raise DataError(f"observations row {r}: the box has no area (bboxWidth {w}, bboxHeight {h})")
    if x + w > 1 + 1e-6 or y + h > 1 + 1e-6:
        raise DataError(f"observations row {r}: the box ({x}, {y}, {w}, {h}) reaches outside the image")
    return x, y, w, h


def package_collection(pkg: CamtrapPackage) -> tuple[pd.DataFrame, dict[str, int]]:
    """One row per media-level animal observation: path (its observationID: the row's key), image, bbox (pixels),
    species, deploymentID, timestamp, eventID, mediaID, observationID, count, individualID (as the package has it),
    and the structure columns `_track` and `_frame`; and counts for the report."""
    obs, media = pkg.tables["observations"], pkg.tables["media"].set_index("mediaID")
    animal = obs[obs["observationType"].str.strip().str.lower() == "animal"]
    if "mediaID" not in animal:
        animal = animal.assign(mediaID="")
    event_level = int((animal["mediaID"] == "").sum())
    animal = animal[animal["mediaID"] != ""]
    rows, sizes, no_box = [], {}, 0
    for idx, o in animal.iterrows():
        r = int(idx) + 1
        m = media.loc[o["mediaID"]]
        f = _inside(pkg.root, m["filePath"], f"media {o['mediaID']!r} filePath")
        if not f.is_file():
            raise DataError(f"media {o['mediaID']!r}: file {m['filePath']!r} not found")
        box = _box(o, r)
        if box is None:
            no_box += 1
            bbox = None
        else:
            if f not in sizes:
                try:
                    with Image.open(f) as img:
                        sizes[f] = img.size
                except (OSError, UnidentifiedImageError) as exc:
                    raise DataError(f"media {o['mediaID']!r}: {m['filePath']!r} is not a readable image") from exc
            iw, ih = sizes[f]
            bbox = (box[0] * iw, box[1] * ih, box[2] * iw, box[3] * ih)
        rows.append({"path": m["filePath"], "image": str(f), "bbox": bbox,
                     "species": o.get("scientificName", ""), "deploymentID": o["deploymentID"],
                     "timestamp": m["timestamp"], "eventID": o.get("eventID", ""), "mediaID": o["mediaID"],
                     "observationID": o["observationID"], "count": o.get("count", ""),
                     "individualID": o.get("individualID", "")})
    df = pd.DataFrame(rows, columns=["path", "image", "bbox", "species", "deploymentID", "timestamp", "eventID",
                                     "mediaID", "observationID", "count", "individualID"])
    if df.empty:
        raise DataError(f"{pkg.descriptor_path}: no animal observation with a media file to identify")
    per_media = df.groupby("mediaID")["observationID"].transform("size")
    one = (per_media == 1) & df["count"].isin(["", "1"])
    ok_event = one.groupby(df["eventID"]).transform("all") & (df["eventID"] != "")
    df["_track"] = df["eventID"].where(ok_event, "")
    df["_frame"] = df["mediaID"].where(per_media > 1, "")
    df["path"] = df["observationID"]  # the row's key: one image can hold several observations
    if no_box:
        log.warning("%d animal observations have no box: their whole image is used", no_box)
    return df.reset_index(drop=True), {"observations": int(len(obs)), "animal_observations": int(len(df)),
                                       "without_box": no_box, "event_level_skipped": event_level}


def write_package(pkg: CamtrapPackage, out: str | Path, assigned: Mapping[str, Mapping[str, Any]]) -> Path:
    """The package again in `out` (a new folder, swapped in whole): deployments and media as they were (file paths
    pointing at the original files), observations with `individualID`, `classificationMethod`, `classifiedBy` and
    `classificationProbability` set for every observation in `assigned` (observationID -> those fields)."""
    out = Path(out)
    if out.resolve() == pkg.root.resolve():
        raise DataError("the package is written to a new folder, never over the one it was read from")
    descriptor = json.loads(json.dumps(pkg.descriptor))
    for res in descriptor["resources"]:
        if res.get("name") == "observations" and isinstance(res.get("schema"), dict):
            names = {f.get("name") for f in res["schema"].get("fields", [])}
            res["schema"]["fields"] += [{"name": n, "type": t} for n, t in WRITTEN.items() if n not in names]
    media = pkg.tables["media"].copy()
    media["filePath"] = [os.path.relpath(_inside(pkg.root, p, "media filePath"), out) for p in media["filePath"]]
    obs = pkg.tables["observations"].copy()
    for col in WRITTEN:
        if col not in obs:
            obs[col] = ""
    pos = {o: k for k, o in enumerate(obs["observationID"])}
    for oid, fields in assigned.items():
        for col, value in fields.items():
            obs.loc[pos[oid], col] = "" if value is None else str(value)
    with atomic_folder(out) as tmp:
        for name, df in (("deployments", pkg.tables["deployments"]), ("media", media), ("observations", obs)):
            target = tmp / pkg.paths[name]
            target.parent.mkdir(parents=True, exist_ok=True)
            df.to_csv(target, index=False)
        (tmp / "datapackage.json").write_text(json.dumps(descriptor, indent=2))
    return out


__all__ = ["CamtrapPackage", "read_package", "package_collection", "write_package", "TABLES"]
