"""Embedding large collections (images, or the detections of many videos) on Ray Data, or in-process
with the same code, into sharded Parquet.

`EmbedBatch` is the stateful callable Ray runs in its actors (one model per actor); the local engine
calls the very same class. Output folder:

    <out>/manifest.json            model name, fingerprint, embedding dimension
    <out>/shards/part-*.parquet    image_id, image, identity, species, label, bbox, embedding
                                   (data.write_embeddings_parquet: `datasets` and the gallery load them)
    <out>/errors.parquet           image_id, image, error: inputs that could not be embedded

Shards are committed every `commit_rows` results (temp file + rename); a re-run skips every image
already in a shard and retries the ones in the errors table.
"""
from __future__ import annotations

import json
import logging
import os
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..data.atomic import atomic_path, write_json_atomic
from ..data import tables as rdata
from ..errors import ConfigError, ModelMismatchError
from ..models.backends import current_runtime, set_runtime, validate_backend

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")


@dataclass
class EmbedJob:
    """One embedding job. `workers` is the number of Ray actors (default: one per CPU, or per GPU when
    `gpus_per_worker` > 0); `ray_address` None starts a local Ray, "auto" joins a running cluster."""

    model: str
    out_dir: str
    engine: str = "local"
    batch_size: int = 32
    workers: Optional[int] = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    commit_rows: int = 4096
    ray_address: Optional[str] = None
    backend: Optional[str] = None  # inference backend of every worker (None: $REID_HUB_BACKEND or auto)

    def __post_init__(self) -> None:
        if self.backend is not None:
            validate_backend(self.backend)
        if self.engine not in ENGINES:
            raise ConfigError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if self.batch_size < 1 or self.commit_rows < 1 or (self.workers is not None and self.workers < 1):
            raise ConfigError("batch_size, commit_rows and workers must be at least 1")
        if self.cpus_per_worker <= 0 or self.gpus_per_worker < 0:
            raise ConfigError("cpus_per_worker must be positive and gpus_per_worker non-negative")


def _worker_model(model: str, device: Optional[str] = None, backend: Optional[str] = None) -> Any:
    """The model of one worker, on its GPU when it has one; torch and ONNX Runtime use the worker's thread
    share (OMP_NUM_THREADS, which Ray sets from the actor's CPUs), not every core of the machine."""
    import torch

    from ..models.loading import from_pretrained

    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    if backend is not None:  # the driver's --threads (in-process engine) stays in force
        set_runtime(backend=backend, threads=current_runtime().threads)
    return from_pretrained(model).to(device or ("cuda" if torch.cuda.is_available() else "cpu"))


class EmbedBatch:
    """Embed a pandas batch of data-table rows; rows that cannot be read become error rows, never a
    failed batch. Columns out: image_id, image, identity, species, label, bbox, embedding (float32
    bytes, empty for an error), error."""

    def __init__(self, model: str, batch_size: int = 32, device: Optional[str] = None,
                 backend: Optional[str] = None) -> None:
        self.model = _worker_model(model, device, backend)
        self.batch_size = batch_size

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        images, errors, boxes = [], [], []
        for row in batch.to_dict("records"):
            bbox = row.get("bbox")
            row["bbox"] = tuple(float(v) for v in bbox) if bbox is not None and len(bbox) == 4 else None
            boxes.append(None if row["bbox"] is None else list(row["bbox"]))
            try:
                images.append(rdata.read_sample(row))
                errors.append(None)
            except Exception as exc:  # one broken input must not fail the job; it is recorded instead
                images.append(None)
                errors.append(f"{type(exc).__name__}: {exc}")
        ok = [i for i, img in enumerate(images) if img is not None]
        emb = self.model.embed([images[i] for i in ok], batch_size=self.batch_size) if ok else None
        vectors = [b""] * len(images)  # raw float32 bytes: one Arrow type for every row, errors included
        for j, i in enumerate(ok):
            vectors[i] = np.ascontiguousarray(emb[j], dtype=np.float32).tobytes()
        out = batch[[c for c in ("image_id", "image", "identity", "species", "label") if c in batch.columns]].copy()
        out["image"] = [v if isinstance(v, str) else None for v in out["image"]] if "image" in out else None
        out["bbox"] = boxes
        out["embedding"] = vectors
        out["error"] = errors
        return out.reset_index(drop=True)


def done_image_ids(out_dir: str | Path) -> set[str]:
    """Image ids already embedded in the shards of `out_dir` (unreadable shards are ignored)."""
    import pyarrow.parquet as pq

    done: set[str] = set()
    for shard in sorted((Path(out_dir) / "shards").glob("part-*.parquet")):
        try:
            done.update(pq.read_table(shard, columns=["image_id"]).column("image_id").to_pylist())
        except Exception as exc:
            log.warning("shard %s is unreadable (%s): its images will be embedded again", shard, exc)
    return done


def _check_manifest(out: Path, model_name: str, fingerprint: str, dim: int) -> None:
    path = out / "manifest.json"
    if path.is_file():
        m = json.loads(path.read_text())
        if m.get("fingerprint") != fingerprint:
            raise ModelMismatchError(f"{out} holds embeddings of model {m.get('model')} ({m.get('fingerprint')}), "
                                     f"not {model_name} ({fingerprint}): use another output folder")
        return
    write_json_atomic(path, {"model": model_name, "fingerprint": fingerprint, "dim": dim}, indent=2)


def _local_batches(todo: pd.DataFrame, job: EmbedJob, fn_cls: type = None, kwargs: Optional[dict] = None,
                   batch_size: Optional[int] = None) -> Iterator[pd.DataFrame]:
    fn = (fn_cls or EmbedBatch)(**(kwargs or {"model": job.model, "batch_size": job.batch_size, "backend": job.backend}))
    step = batch_size or job.batch_size
    for start in range(0, len(todo), step):
        yield fn(todo.iloc[start:start + step])


def start_ray(address: Optional[str] = None, cpus: Optional[int] = None) -> None:
    """Join the Ray cluster at `address` ("auto": a running one), or start a local Ray with `cpus` (default every
    core); nothing when Ray is already up."""
    import ray

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
                 num_cpus=None if address else (cpus or os.cpu_count()))


def _ray_batches(todo: pd.DataFrame, job: EmbedJob, fn_cls: type = None, kwargs: Optional[dict] = None,
                 batch_size: Optional[int] = None) -> Iterator[pd.DataFrame]:
    import ray

    start_ray(job.ray_address)
    workers = job.workers or max(1, int(ray.available_resources().get(
        "GPU" if job.gpus_per_worker else "CPU", 1) // max(job.gpus_per_worker or job.cpus_per_worker, 1e-9)))
    ds = ray.data.from_pandas(todo.astype({"bbox": object}) if "bbox" in todo else todo)
    ds = ds.map_batches(fn_cls or EmbedBatch,
                        fn_constructor_kwargs=kwargs or {"model": job.model, "batch_size": job.batch_size, "backend": job.backend},
                        batch_size=batch_size or job.batch_size, batch_format="pandas", concurrency=workers,
                        num_cpus=job.cpus_per_worker, num_gpus=job.gpus_per_worker or None)
    yield from ds.iter_batches(batch_size=None, batch_format="pandas")


def embed_collection(df: pd.DataFrame, job: EmbedJob, progress: bool = True) -> dict[str, Any]:
    """Embed every row of a data table (see data.load_sources) into `job.out_dir`; returns counts and time."""
    from ..models.loading import from_pretrained

    t0 = time.perf_counter()
    out = Path(job.out_dir)
    model = from_pretrained(job.model)
    _check_manifest(out, model.config.name, model.fingerprint(), model.embedding_dim)
    model_name, fingerprint = model.config.name, model.fingerprint()
    del model
    done = done_image_ids(out)
    df = df.copy()
    df["image_id"] = df["image_id"].astype(str)
    todo = df[~df["image_id"].isin(done)].reset_index(drop=True)
    if "bbox" not in todo.columns:
        todo["bbox"] = None
    errors_path = out / "errors.parquet"
    log.info("%d images, %d already embedded, %d to do (%s engine)", len(df), len(df) - len(todo), len(todo),
             job.engine)
    errors: list[pd.DataFrame] = []
    pending: list[pd.DataFrame] = []
    written = 0

    def commit() -> None:
        nonlocal pending, written
        if not pending:
            return
        part = pd.concat(pending, ignore_index=True)
        pending = []
        good = part[part["error"].isna()]
        bad = part[part["error"].notna()]
        if len(bad):
            errors.append(bad[["image_id", "image", "error"]])
        if len(good):
            emb = np.stack([np.frombuffer(b, dtype=np.float32) for b in good["embedding"]])
            rdata.write_embeddings_parquet(out / "shards" / f"part-{uuid.uuid4().hex[:16]}.parquet",
                                           good.assign(bbox=[None if b is None else tuple(b) for b in good["bbox"]]),
                                           emb, model_name, fingerprint)
            written += len(good)

    if len(todo):
        batches = _ray_batches(todo, job) if job.engine == "ray" else _local_batches(todo, job)
        bar = tqdm(total=len(todo), disable=not progress, desc=f"embed ({job.engine})", unit="img")
        buffered = 0
        for batch in batches:
            pending.append(batch)
            buffered += len(batch)
            bar.update(len(batch))
            if buffered >= job.commit_rows:
                commit()
                buffered = 0
        commit()
        bar.close()
    err = pd.concat(errors, ignore_index=True) if errors else pd.DataFrame(columns=["image_id", "image", "error"])
    with atomic_path(errors_path) as tmp:
        err.astype({"image_id": str}).to_parquet(tmp, index=False)
    seconds = time.perf_counter() - t0
    return {"images": len(df), "skipped_done": len(df) - len(todo), "embedded": written, "errors": len(err),
            "seconds": seconds, "engine": job.engine, "out_dir": str(out), "job": asdict(job)}


class DescribeVideos:
    """Stateful callable: the crop descriptors of each (video, detections) row into
    <out>/videos/<name>.parquet (frame, x, y, w, h, score, track, embedding); a video that fails is
    an error row, never a failed job."""

    def __init__(self, model: str, out_dir: str, padding: float = 0.1, min_score: float = 0.5,
                 batch_size: int = 16, backend: Optional[str] = None) -> None:
        self.model = _worker_model(model, backend=backend)
        self.out, self.padding, self.min_score, self.batch_size = Path(out_dir), padding, min_score, batch_size

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from ..video import compute_descriptors, load_video_detections

        rows = []
        for r in batch.to_dict("records"):
            try:
                source, det = load_video_detections(r["video"], r["detections"], min_score=self.min_score)
                desc = np.asarray(compute_descriptors(source, det, self.model, padding=self.padding,
                                                      cache_dir=self.out / "cache", batch_size=self.batch_size))
                table = pa.Table.from_pandas(det[["frame", "x", "y", "w", "h", "score", "track"]], preserve_index=False)
                table = table.append_column("embedding", pa.FixedSizeListArray.from_arrays(
                    pa.array(desc.reshape(-1)), desc.shape[1]))
                path = self.out / "videos" / f"{r['name']}.parquet"
                with atomic_path(path) as tmp:
                    pq.write_table(table, tmp)
                rows.append((r["name"], len(det), None))
            except Exception as exc:  # recorded, the other videos go on
                rows.append((r["name"], 0, f"{type(exc).__name__}: {exc}"))
        return pd.DataFrame(rows, columns=["name", "detections", "error"])


def embed_videos(videos: pd.DataFrame, job: EmbedJob, padding: float = 0.1, min_score: float = 0.5) -> dict[str, Any]:
    """Crop descriptors of many videos (a table with columns video, detections[, name]) on Ray or
    in-process, one Parquet file per video under <out>/videos/; videos already done are skipped and
    failures go to <out>/video_errors.parquet."""
    t0 = time.perf_counter()
    out = Path(job.out_dir)
    videos = videos.copy()
    if "name" not in videos:
        videos["name"] = [Path(str(v)).stem for v in videos["video"]]
    if videos["name"].duplicated().any():
        raise ConfigError("video names must be unique (give a name column)")
    todo = videos[[not (out / "videos" / f"{n}.parquet").is_file() for n in videos["name"]]]
    todo = todo.astype({"video": str, "detections": str}).reset_index(drop=True)
    kwargs = {"model": job.model, "out_dir": str(out), "padding": padding, "min_score": min_score, "backend": job.backend,
              "batch_size": job.batch_size}
    results = []
    if len(todo):
        run = _ray_batches if job.engine == "ray" else _local_batches
        results = list(run(todo[["video", "detections", "name"]], job, DescribeVideos, kwargs, batch_size=1))
    res = pd.concat(results, ignore_index=True) if results else pd.DataFrame(columns=["name", "detections", "error"])
    err = res[res["error"].notna()]
    with atomic_path(out / "video_errors.parquet") as tmp:
        err.to_parquet(tmp, index=False)
    return {"videos": len(videos), "skipped_done": len(videos) - len(todo), "described": int(res["error"].isna().sum()),
            "errors": len(err), "detections": int(res["detections"].sum()), "seconds": time.perf_counter() - t0}


def read_embedding_shards(out_dir: str | Path) -> tuple[pd.DataFrame, np.ndarray, dict[str, str]]:
    """All shards of an embedding folder as one table, their embeddings, and the model metadata."""
    shards = sorted((Path(out_dir) / "shards").glob("part-*.parquet"))
    if not shards:
        raise ConfigError(f"{out_dir} holds no embedding shards")
    parts = [rdata.read_embeddings_parquet(s) for s in shards]
    fps = {p[2].get("reid_hub_fingerprint") for p in parts}
    if len(fps) != 1:
        raise ModelMismatchError(f"{out_dir} mixes embeddings of several models: {sorted(map(str, fps))}")
    return (pd.concat([p[0] for p in parts], ignore_index=True), np.concatenate([p[1] for p in parts]), parts[0][2])


def ingest_shards(gallery: Any, out_dir: str | Path, species: str = "") -> int:
    """Bulk-load an embedding folder into a gallery (one individual per identity label); the shards
    must come from the gallery's model."""
    rows, emb, meta = read_embedding_shards(out_dir)
    if meta.get("reid_hub_fingerprint") != gallery.fingerprint:
        raise ModelMismatchError(f"shards of {out_dir} come from model {meta.get('reid_hub_model')} "
                                 f"({meta.get('reid_hub_fingerprint')}); the gallery uses {gallery.fingerprint}")
    return gallery.ingest(rows["label"].astype(str).tolist(), emb, species=species,
                          sources=rows["image"].fillna(rows["image_id"]).astype(str).tolist())


__all__ = ["EmbedJob", "EmbedBatch", "DescribeVideos", "embed_collection", "embed_videos", "done_image_ids", "read_embedding_shards",
           "ingest_shards", "ENGINES"]
