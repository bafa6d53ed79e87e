"""Exports for camera-trap tools: a Camtrap DP 1.0 data package (Frictionless) with individualID filled
from the gallery, and a plain sightings table.

Deployments are the gallery's videos / sources (one deployment each); the gallery does not know where a
camera stood, so latitude, longitude and deployment times come from `deployments` when given (keyed by
deployment id) and are left empty otherwise (fill them before publishing: Camtrap DP requires them).
Media are the gallery's images; each has one media-level observation of its individual.
"""
from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional
from ..data.atomic import atomic_path, write_text_atomic


if TYPE_CHECKING:
    from .store import Gallery

PROFILE = "https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0/camtrap-dp-profile.json"
SCHEMA_URL = "https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0/{}-table-schema.json"


def _f(name: str, type_: str = "string", required: bool = False, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **({"constraints": {"required": True}} if required else {}), **extra}


#: the Camtrap DP 1.0 fields this exporter writes (names, types and required flags of the official schemas)
SCHEMAS: dict[str, dict[str, Any]] = {
    "deployments": {"fields": [_f("deploymentID", required=True), _f("locationID"), _f("locationName"),
                               _f("latitude", "number"), _f("longitude", "number"),
                               _f("deploymentStart", "datetime"), _f("deploymentEnd", "datetime"),
                               _f("deploymentComments")], "primaryKey": ["deploymentID"]},
    "media": {"fields": [_f("mediaID", required=True), _f("deploymentID", required=True),
                         _f("captureMethod"), _f("timestamp", "datetime", required=True),
                         _f("filePath", required=True), _f("filePublic", "boolean", required=True),
                         _f("fileName"), _f("fileMediatype", required=True), _f("mediaComments")],
              "primaryKey": ["mediaID"]},
    "observations": {"fields": [_f("observationID", required=True), _f("deploymentID", required=True),
                                _f("mediaID"), _f("eventStart", "datetime", required=True),
                                _f("eventEnd", "datetime", required=True), _f("observationLevel", required=True),
                                _f("observationType", required=True), _f("scientificName"), _f("count", "integer"),
                                _f("individualID"), _f("classificationMethod"), _f("classifiedBy"),
                                _f("observationComments")], "primaryKey": ["observationID"]},
}


def _iso(t: Optional[float]) -> str:
    return datetime.fromtimestamp(float(t or 0), tz=timezone.utc).isoformat(timespec="seconds")


def _csv(rows: list[dict[str, Any]], fields: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in fields})
    return buf.getvalue()


def camtrap_tables(gallery: "Gallery", deployments: Optional[dict[str, dict[str, Any]]] = None
                   ) -> dict[str, list[dict[str, Any]]]:
    """The three Camtrap DP tables as rows."""
    rows = [tuple(r.values()) for r in gallery.image_records()]
    deps: dict[str, dict[str, Any]] = {}
    media, obs = [], []
    for image_id, source, video, frame, created, iid, name, species in rows:
        dep = video or (source.split("#")[0] if source else "") or "gallery"
        times = deps.setdefault(dep, {"start": created, "end": created})
        times["start"], times["end"] = min(times["start"], created), max(times["end"], created)
        ts = _iso(created)
        media.append({"mediaID": f"img{image_id}", "deploymentID": dep, "captureMethod": "activityDetection",
                      "timestamp": ts, "filePath": source or f"thumbs/{image_id}.jpg", "filePublic": "false",
                      "fileName": Path(source).name if source else f"{image_id}.jpg", "fileMediatype": "image/jpeg",
                      "mediaComments": f"frame {frame}" if frame is not None else None})
        obs.append({"observationID": f"obs{image_id}", "deploymentID": dep, "mediaID": f"img{image_id}",
                    "eventStart": ts, "eventEnd": ts, "observationLevel": "media", "observationType": "animal",
                    "scientificName": species or None, "count": 1, "individualID": iid,
                    "classificationMethod": "machine", "classifiedBy": f"reid-hub {gallery.model_name}",
                    "observationComments": name})
    given = deployments or {}
    dep_rows = [{"deploymentID": d, "locationID": given.get(d, {}).get("locationID"),
                 "locationName": given.get(d, {}).get("locationName", d),
                 "latitude": given.get(d, {}).get("latitude"), "longitude": given.get(d, {}).get("longitude"),
                 "deploymentStart": given.get(d, {}).get("deploymentStart", _iso(t["start"])),
                 "deploymentEnd": given.get(d, {}).get("deploymentEnd", _iso(t["end"])),
                 "deploymentComments": None if d in given else "location unknown to reid-hub: fill before publishing"}
                for d, t in deps.items()]
    return {"deployments": dep_rows, "media": media, "observations": obs}


def export_camtrap_dp(gallery: "Gallery", out: str | Path, deployments: Optional[dict[str, dict[str, Any]]] = None,
                      title: Optional[str] = None) -> Path:
    """Write a Camtrap DP package (datapackage.json + deployments/media/observations CSV) as a zip, or into
    a folder when `out` has no .zip suffix. Atomic: written to a temporary name, then renamed."""
    out = Path(out)
    tables = camtrap_tables(gallery, deployments)
    times = [m["timestamp"] for m in tables["media"]] or [_iso(0)]
    species = sorted({o["scientificName"] for o in tables["observations"] if o["scientificName"]})
    package = {
        "profile": PROFILE, "name": "reid-hub-gallery", "created": _iso(datetime.now(timezone.utc).timestamp()),
        "title": title or f"reid-hub gallery {gallery.folder.name}",
        "contributors": [{"title": "reid-hub", "role": "contributor"}],
        "project": {"title": title or gallery.folder.name, "samplingDesign": "opportunistic",
                    "captureMethod": ["activityDetection"], "individualAnimals": True, "observationLevel": ["media"]},
        "temporal": {"start": min(times)[:10], "end": max(times)[:10]},
        "taxonomic": [{"scientificName": s} for s in species],
        "resources": [{"name": name, "path": f"{name}.csv", "profile": "tabular-data-resource", "format": "csv",
                       "mediatype": "text/csv", "encoding": "utf-8", "schema": SCHEMA_URL.format(name)}
                      for name in SCHEMAS],
    }
    files = {"datapackage.json": json.dumps(package, indent=2)}
    for name, schema in SCHEMAS.items():
        files[f"{name}.csv"] = _csv(tables[name], [f["name"] for f in schema["fields"]])
    if out.suffix.lower() == ".zip":
        with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            for name, text in files.items():
                z.writestr(name, text)
    else:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            write_text_atomic(out / name, text)
    return out


def export_sightings_csv(gallery: "Gallery", out: str | Path) -> Path:
    """One row per (individual, video) sighting: ids, name, species, frames seen, first/last frame, score."""
    table = []
    for r in gallery.sighting_records():
        iid, name, species, video, f, score, created = (r["individual_id"], r["display_name"], r["species"],
                                                        r["video"], r["frames"], r["score"], r["created_at"])
        table.append({"individual_id": iid, "display_name": name, "species": species, "video": video,
                      "frames_seen": len(f), "first_frame": min(f) if f else None, "last_frame": max(f) if f else None,
                      "score": score, "recorded_at": _iso(created)})
    return write_text_atomic(out, _csv(table, ["individual_id", "display_name", "species", "video", "frames_seen",
                                               "first_frame", "last_frame", "score", "recorded_at"]))


__all__ = ["export_camtrap_dp", "export_sightings_csv", "camtrap_tables", "SCHEMAS", "PROFILE"]
