"""A Camtrap DP package made from labelled animal images, with synthetic deployments and times: the only place a
camera-trap study's truth is known. Each sighting is an event of one to three photos of one animal at one
deployment on one day, its photos pasted on a larger background (so the package's boxes matter); now and then two
animals share one photo. The true identities go to `truth.csv`, not into the package."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from .atomic import write_text_atomic
from .imaging import load_image

#: the inline table schemas written (Camtrap DP 1.0 field names and types), so that a package validates offline
FIELDS = {
    "deployments": [("deploymentID", "string"), ("locationID", "string"), ("latitude", "number"),
                    ("longitude", "number"), ("deploymentStart", "datetime"), ("deploymentEnd", "datetime")],
    "media": [("mediaID", "string"), ("deploymentID", "string"), ("captureMethod", "string"),
              ("timestamp", "datetime"), ("filePath", "string"), ("filePublic", "boolean"),
              ("fileMediatype", "string")],
    "observations": [("observationID", "string"), ("deploymentID", "string"), ("mediaID", "string"),
                     ("eventID", "string"), ("eventStart", "datetime"), ("eventEnd", "datetime"),
                     ("observationLevel", "string"), ("observationType", "string"), ("scientificName", "string"),
                     ("count", "integer"), ("bboxX", "number"), ("bboxY", "number"), ("bboxWidth", "number"),
                     ("bboxHeight", "number"), ("individualID", "string")],
}


def make_package(folder: str | Path, images: Sequence[tuple[Any, str, str]], deployments: int = 3, days: int = 10,
                 shared_photos: float = 0.1, seed: int = 0, start: str = "2026-05-01") -> Path:
    """Write a package to `folder` from `images` ((image or path, identity, species) ...): each identity's photos
    become events at random deployments and days; returns the datapackage.json path."""
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    (folder / "media").mkdir(parents=True, exist_ok=True)
    t0 = pd.Timestamp(start, tz="UTC")
    deps = [{"deploymentID": f"cam{k}", "locationID": f"loc{k}", "latitude": round(-1.5 + 0.01 * k, 5),
             "longitude": round(36.8 + 0.01 * k, 5), "deploymentStart": t0.isoformat(),
             "deploymentEnd": (t0 + pd.Timedelta(days, "D")).isoformat()} for k in range(deployments)]
    by_id: dict[str, list[tuple[Any, str]]] = {}
    for img, ident, species in images:
        by_id.setdefault(ident, []).append((img, species))
    media, obs, truth = [], [], []
    pending_share: list[tuple[Image.Image, str, str]] = []
    event = 0
    for ident, photos in by_id.items():
        k = 0
        while k < len(photos):
            burst = photos[k:k + int(rng.integers(1, 4))]
            k += len(burst)
            dep = f"cam{int(rng.integers(deployments))}"
            when = t0 + pd.Timedelta(int(rng.integers(days * 24 * 60)), "min")
            event += 1
            for b, (img, species) in enumerate(burst):
                crop = load_image(img).convert("RGB")
                crops = [(crop, ident, species)]
                if pending_share and rng.random() < shared_photos:  # another animal in the same photo
                    crops.append(pending_share.pop())
                elif len(burst) > 1 and b == len(burst) - 1:
                    pending_share.append((crop, ident, species))
                mid = f"m{len(media):05d}"
                ts = when + pd.Timedelta(2 * b, "s")
                boxes = _compose(crops, folder / "media" / f"{mid}.jpg", rng)
                media.append({"mediaID": mid, "deploymentID": dep, "captureMethod": "activityDetection",
                              "timestamp": ts.isoformat(), "filePath": f"media/{mid}.jpg", "filePublic": "false",
                              "fileMediatype": "image/jpeg"})
                for (c, who, sp), (x, y, w, h) in zip(crops, boxes):
                    oid = f"o{len(obs):05d}"
                    shared = len(crops) > 1
                    obs.append({"observationID": oid, "deploymentID": dep, "mediaID": mid,
                                "eventID": "" if shared else f"e{event:05d}", "eventStart": ts.isoformat(),
                                "eventEnd": ts.isoformat(), "observationLevel": "media", "observationType": "animal",
                                "scientificName": sp, "count": 1, "bboxX": x, "bboxY": y, "bboxWidth": w,
                                "bboxHeight": h, "individualID": ""})
                    truth.append({"observationID": oid, "individual": who})
    tables = {"deployments": deps, "media": media, "observations": obs}
    for name, rows in tables.items():
        pd.DataFrame(rows, columns=[f for f, _ in FIELDS[name]]).to_csv(folder / f"{name}.csv", index=False)
    pd.DataFrame(truth).to_csv(folder / "truth.csv", index=False)
    descriptor = {"name": "reid-hub-simulated", "title": "A camera-trap study simulated from labelled images",
                  "resources": [{"name": name, "path": f"{name}.csv", "profile": "tabular-data-resource",
                                 "format": "csv", "mediatype": "text/csv", "encoding": "utf-8",
                                 "schema": {"fields": [{"name": f, "type": t} for f, t in FIELDS[name]],
                                            "primaryKey": [FIELDS[name][0][0]]}}
                                for name in tables]}
    write_text_atomic(folder / "datapackage.json", json.dumps(descriptor, indent=2))
    return folder / "datapackage.json"


def _compose(crops: list[tuple[Image.Image, str, str]], target: Path,
             rng: np.random.Generator) -> list[tuple[float, float, float, float]]:
    """Paste the crops side by side on a plain background with margins; their relative boxes."""
    h = max(c.height for c, _, _ in crops)
    widths = [c.width for c, _, _ in crops]
    margin = int(0.2 * h)
    W, H = sum(widths) + margin * (len(crops) + 1), h + 2 * margin
    canvas = Image.new("RGB", (W, H), tuple(int(v) for v in rng.integers(60, 120, 3)))
    boxes, x = [], margin
    for c, _, _ in crops:
        y = int(rng.integers(0, 2 * margin + h - c.height + 1))
        y = min(y, H - c.height)
        canvas.paste(c, (x, y))
        boxes.append((round(x / W, 6), round(y / H, 6), round(c.width / W, 6), round(c.height / H, 6)))
        x += c.width + margin
    canvas.save(target, quality=92)
    return boxes


__all__ = ["make_package", "FIELDS"]
