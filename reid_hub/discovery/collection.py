"""An unlabelled collection: a folder of images or a CSV/Parquet table with a `path` column."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..data.camtrap_package import package_collection, read_package
from ..data.tables import parse_bbox
from ..errors import DataError

#: file endings read as images when a folder is given
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
#: box columns accepted (x, y, w, h in pixels)
BOX_COLUMNS = ("bbox", "box")


def load_collection(table: str | Path) -> pd.DataFrame:
    """Every row of TABLE, in order, with its columns plus `image` (the resolved file) and `bbox` (or None).

    TABLE is a folder (its images, recursively, sorted), a folder holding metadata.csv, a CSV/Parquet file
    whose `path` column is relative to the file's folder (absolute paths stay as they are), or a Camtrap DP
    package (its datapackage.json or its folder): one row per animal observation, keyed by observationID, with
    the package kept in `attrs["camtrap"]` and its structure in `_track` / `_frame`."""
    src = Path(table)
    if src.name == "datapackage.json" or (src.is_dir() and (src / "datapackage.json").is_file()
                                           and not (src / "metadata.csv").is_file()):
        pkg = read_package(src)
        df, report = package_collection(pkg)
        df["species"] = df["species"].astype(str)
        df.attrs["camtrap"], df.attrs["camtrap_report"] = pkg, report
        return df
    if src.is_dir() and (src / "metadata.csv").is_file():
        src = src / "metadata.csv"
    if src.is_dir():
        files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"{table}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        df = pd.DataFrame({"path": [str(p.relative_to(src)) for p in files]})
        root = src
    elif src.is_file():
        root = src.parent
        try:
            if src.suffix.lower() == ".parquet":
                df = pd.read_parquet(src)
            else:
                df = pd.read_csv(src, dtype=str, keep_default_na=False)
        except Exception as exc:  # pandas/pyarrow raise many types for a file that is not a table
            raise DataError(f"{table} is not a readable CSV or Parquet table: {exc}") from exc
        if "path" not in df.columns:
            raise DataError(f"{table} has no 'path' column (columns: {', '.join(map(str, df.columns))})")
    else:
        raise DataError(f"{table}: no such file or folder")
    if df.empty:
        raise DataError(f"{table}: the table has no rows")
    df = df.reset_index(drop=True)
    images = []
    for r, p in enumerate(df["path"].astype(str)):
        f = Path(p) if Path(p).is_absolute() else root / p
        if not p.strip() or not f.is_file():
            raise DataError(f"{table}: row {r + 1}: image {p!r} not found")
        images.append(str(f))
    df["image"] = images
    box_col = next((c for c in BOX_COLUMNS if c in df.columns), None)
    try:
        df["bbox"] = [parse_bbox(b) for b in df[box_col]] if box_col else None
    except DataError as exc:
        raise DataError(f"{table}: column {box_col!r}: {exc}") from exc
    if "species" not in df.columns:
        df["species"] = ""
    df["species"] = df["species"].astype(str)
    return df


def rows_by_species(table: pd.DataFrame) -> dict[str, np.ndarray]:
    """The row positions of each species of a table (one species "" when it has no species column)."""
    species = table["species"].astype(str) if "species" in table else pd.Series([""] * len(table))
    return {s: np.asarray(rows, np.int64) for s, rows in species.groupby(species).indices.items()}


__all__ = ["load_collection", "rows_by_species", "IMAGE_SUFFIXES"]
