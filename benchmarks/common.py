"""What the benchmark scripts share: where the data and the results are, how a result file is written (with the
machine, the versions and the date), the staged identity split, cached embeddings, and a few scorers.

The scripts run as `python benchmarks/NAME.py`, so this module is importable as `common` beside them.
"""
from __future__ import annotations

import json
import logging
import os
import random
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.cluster import AgglomerativeClustering
from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score
from tqdm.auto import tqdm

from reid_hub.data import tables as rdata
from reid_hub import from_pretrained
from reid_hub.evaluation.runner import imagenet_baseline, machine_info
from reid_hub.models.table_embedding import embed_table
from reid_hub.models.model import ReIDModel
from reid_hub.video import augment

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
#: the staged real data (../shared/data beside the checkout)
SHARED = REPO.parent / "shared" / "data"
#: the column that names the camera of a fish image: never match a query against its own camera
CROSS = "camera"


def write_result(name: str, payload: dict[str, Any]) -> Path:
    """Write benchmarks/results/NAME.json with the machine, library versions and date beside `payload`."""
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}.json"
    body = {"machine": machine_info(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), **payload}
    out.write_text(json.dumps(body, indent=2, default=float))
    return out


def staged_split(data: list[str]) -> pd.DataFrame:
    """The data table with the benchmark's identity split (seed 0, 30% unseen per species). The species
    multispecies-v1 was trained on keep its exact split (its unseen identities stay unseen, so v1 is scored only
    on identities it never saw); new species take the seeded per-species draw."""
    df = rdata.split_by_identity(rdata.load_sources(data), 0.3, 0)
    v1_split = json.loads((HERE / "results" / "candidates.json").read_text())["split"]
    for sp, entry in v1_split.items():
        rows = df["species"] == sp
        df.loc[rows, "split"] = np.where(df.loc[rows, "identity"].isin(entry["unseen_identities"]), "unseen", "train")
    return df


def embed_table_cached(model: ReIDModel, df: pd.DataFrame, cache: Path, raw_tag: str | None = None) -> dict[str, np.ndarray]:
    """image_id -> embedding (with `raw_tag`: the pooled backbone features), cached as .npz beside the run
    (keyed by the model's fingerprint, or by the tag)."""
    f = cache / (f"raw-{raw_tag}.npz" if raw_tag else f"emb-{model.fingerprint()}.npz")
    if f.is_file():
        z = np.load(f, allow_pickle=True)
        return dict(zip(z["ids"], z["emb"]))
    cache.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    emb = embed_table(model, df, batch_size=16, raw_features=raw_tag is not None)
    logging.info("embedded %d images with %s in %.0f s", len(df), model.config.name, time.time() - t0)
    np.savez(f, ids=np.asarray(df["image_id"]), emb=emb)
    return dict(zip(df["image_id"], emb))


def cosine_scorer(table: dict[str, np.ndarray], centred: bool = False):
    """Cosine similarities of the embeddings in `table` of a data table's images; `centred`: after subtracting the
    mean embedding of those images (the gallery being searched), then re-normalising."""
    def score(part: pd.DataFrame) -> np.ndarray:
        e = np.stack([table[i] for i in part["image_id"]]).astype(np.float32)
        e /= np.linalg.norm(e, axis=1, keepdims=True) + 1e-12
        if centred:
            e -= e.mean(axis=0, keepdims=True)
            e /= np.linalg.norm(e, axis=1, keepdims=True) + 1e-12
        return e @ e.T
    return score


def species_summary(res: dict[str, Any], method: str) -> dict[str, Any]:
    """Per-species top-1, top-5, mAP and query count (and open-set scores, when evaluated) of one method of an
    `evaluate_methods` result, rounded for the results JSON."""
    out = {}
    for sp, entry in res["species"].items():
        m = entry[method]
        out[sp] = {"top1": round(m["top1"], 4), "top5": round(m["top5"], 4), "mAP": round(m["mAP"], 4),
                   "queries": m["queries"]}
        if "open_set" in m:
            out[sp]["open_set"] = {k: round(float(m["open_set"][k]), 4) for k in ("auroc", "balanced_accuracy")}
    return out


KNOWN_LICENSES = {  # from each dataset's SOURCE.md; the images are never redistributed with reid-hub
    "lion": "none stated by the source (research use here)",
    "nyala": "none stated by the source (research use here)",
    "chimpanzee": "non-commercial (C-Tai / chimpanzee_faces terms)",
    "cat_faces": "MIT repository, no separate data license",
    "fish_fs48": "none stated by the source (research use here)",
}


def dataset_license(dataset: str) -> str:
    """The license line of a staged dataset, from the table above or its SOURCE.md."""
    if dataset in KNOWN_LICENSES:
        return KNOWN_LICENSES[dataset]
    src = SHARED / dataset / "SOURCE.md"
    if not src.is_file():
        return "see dataset SOURCE.md"
    for line in src.read_text().splitlines():
        if line.lower().startswith("license:"):
            return line.split(":", 1)[1].strip().split(". ")[0].replace("|", "/")
    return "not stated"


def plan_videos(labels: np.ndarray, videos: int, seed: int) -> list[dict[str, np.ndarray]]:
    """Per pseudo-video, {identity: row indices}: each identity with two images or more appears in 1-3 of
    the videos, its images divided among them (none reused)."""
    rng = random.Random(seed)
    ids = sorted({lbl for lbl in labels if (labels == lbl).sum() >= 2})
    appear = {i: sorted(rng.sample(range(videos), k=min(videos, rng.choice([1, 2, 2, 3])))) for i in ids}
    plan: list[dict[str, np.ndarray]] = [dict() for _ in range(videos)]
    for i in ids:
        idx = list(np.flatnonzero(labels == i))
        rng.shuffle(idx)
        vids = appear[i][: len(idx)]
        for part, v in zip(np.array_split(np.array(idx), len(vids)), vids):
            plan[v][i] = part
    return plan



def photo_descriptors(part: pd.DataFrame, models: dict, variants: int, seed: int, path: Path) -> dict[str, np.ndarray]:
    """(n_photos * variants, D) descriptors per feature kind; row = photo * variants + variant."""
    if path.is_file():
        z = np.load(path)
        return {k: z[k] for k in z.files}
    out: dict[str, list] = {k: [] for k in models}
    rows = list(part.itertuples(index=False))
    items = [(i, v) for i in range(len(rows)) for v in range(variants)]
    for start in tqdm(range(0, len(items), 64), desc=path.stem, unit="batch"):
        imgs = []
        for i, v in items[start:start + 64]:
            rng = np.random.default_rng([seed, i, v])
            imgs.append(augment(rdata.read_sample(rows[i]._asdict()), rng))
        for kind, (model, raw) in models.items():
            out[kind].append(model.describe(model.preprocess(imgs), raw_features=raw))
    arrays = {k: np.concatenate(v).astype(np.float32) for k, v in out.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return arrays


def real_embeddings(n: int, model_name: str) -> np.ndarray:
    from reid_hub import from_pretrained

    model = from_pretrained(model_name)
    paths = sorted(SHARED.glob("*/images/*/*.jpg"))[:: max(1, len(sorted(SHARED.glob("*/images/*/*.jpg"))) // n)][:n]
    if not paths:
        raise SystemExit("no real images in ../shared/data")
    return model.embed([str(p) for p in paths], batch_size=16)


def synth(base: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    centres = base[rng.integers(0, len(base), size=(n + 4) // 5)]
    centres = centres + rng.normal(0, 0.5 / np.sqrt(base.shape[1]), centres.shape).astype(np.float32)
    x = np.repeat(centres, 5, axis=0)[:n] + rng.normal(0, 0.25 / np.sqrt(base.shape[1]), (n, base.shape[1]))
    x = x.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)

__all__ = ["HERE", "REPO", "RESULTS", "SHARED", "CROSS", "write_result", "staged_split", "embed_table_cached",
           "cosine_scorer", "species_summary", "KNOWN_LICENSES", "dataset_license", "plan_videos", "photo_descriptors", "real_embeddings", "synth"]


# -- discovery benchmarks (discovery.py, group_review.py): the staged species in two settings --------------
DISCOVERY_SPECIES = ["lion", "nyala", "chimpanzee", "cat_faces", "fish_fs48"]
DISCOVERY_SPLIT = Path(__file__).resolve().parent / "splits" / "generalization_seed0.csv"
DISCOVERY_SETTINGS = {"imagenet": "ImageNet EfficientNet-Lite0 pooled features (no species seen in training), every image",
            "v2-unseen": "multispecies-v2 (the default) on the identities it never saw "
                         "(benchmarks/splits/generalization_seed0.csv), as the hidden unseen-lion/nyala sets"}


def discovery_embeddings(ds: str, df: pd.DataFrame, setting: str) -> np.ndarray:
    """A dataset's embeddings in a setting, L2-normalised, cached under $REID_HUB_CACHE/discovery."""
    cache = Path(os.environ.get("REID_HUB_CACHE", Path.home() / ".cache" / "reid-hub")) / "discovery"
    tag = "imagenet" if setting == "imagenet" else "v2"
    f = cache / f"{tag}-{ds}.npz"
    if f.is_file():
        z = np.load(f, allow_pickle=True)
        if list(z["ids"]) == df["image_id"].tolist():
            return z["emb"]
    if tag == "imagenet":
        e = embed_table(imagenet_baseline("lite0"), df, raw_features=True, progress=True)
    else:
        e = embed_table(from_pretrained(), df, progress=True)
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(f, ids=df["image_id"].to_numpy(), emb=e.astype(np.float32))
    return e


def label_chosen_baseline(e: np.ndarray, y: np.ndarray) -> dict:
    """Cosine average linkage of every pair at the ARI-best distance threshold (chosen with the labels)."""
    dist = 1 - e @ e.T
    best = {"ari": -1.0}
    for thr in np.arange(0.05, 0.9, 0.025):
        lab = AgglomerativeClustering(n_clusters=None, metric="precomputed", linkage="average",
                                      distance_threshold=float(thr)).fit_predict(dist)
        a = adjusted_rand_score(y, lab)
        if a > best["ari"]:
            best = {"ari": float(a), "ami": float(adjusted_mutual_info_score(y, lab)), "distance": round(float(thr), 3),
                    "individuals": int(lab.max() + 1)}
    return best
