"""`reid-hub embed`: images or dataset folders -> a Parquet table of embeddings (or sharded, resumable output)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

from ..errors import ConfigError


def _image_table(images: Sequence[str]):
    """A data table of plain image files (no identities)."""
    import pandas as pd

    missing = [p for p in images if not Path(p).is_file()]
    if missing:
        raise ConfigError(f"no such file: {missing[0]}")
    return pd.DataFrame({"image_id": [str(p) for p in images], "image": [str(p) for p in images],
                         "identity": "", "species": "", "bbox": None, "dataset": "cli", "label": ""})


def _cmd_embed(args: argparse.Namespace) -> int:
    from ..data import tables as rdata
    from ..models.table_embedding import embed_table
    from ..models.loading import from_pretrained

    if not args.images and not args.data:
        raise ConfigError("give image files or --data sources")
    if args.engine:  # sharded, resumable output folder; Ray Data or in-process
        from ..scale.embedding import EmbedJob, embed_collection

        job = EmbedJob(args.model, args.out, engine=args.engine, batch_size=args.batch_size, workers=args.workers,
                       gpus_per_worker=args.gpus_per_worker, ray_address=args.ray_address, backend=args.backend)
        df = rdata.load_sources(args.data) if args.data else _image_table(args.images)
        print(json.dumps(embed_collection(df, job, progress=not args.quiet), indent=2, default=str))
        return 0
    model = from_pretrained(args.model)
    if args.data:
        df = rdata.load_sources(args.data)
    else:
        df = _image_table(args.images)
    emb = embed_table(model, df, batch_size=args.batch_size, progress=not args.quiet)
    path = rdata.write_embeddings_parquet(args.out, df, emb, model.config.name, model.fingerprint())
    print(f"wrote {len(emb)} embeddings of dim {emb.shape[1]} to {path}")
    return 0


def add_parsers(sub: Any, runtime: argparse.ArgumentParser, default_model: str) -> None:
    """Add the embed command to the `reid-hub` parser."""
    DEFAULT_MODEL = default_model
    s = sub.add_parser("embed", help="embed images into a Parquet table", parents=[runtime])
    s.add_argument("images", nargs="*")
    s.add_argument("--data", nargs="*", help="dataset folders instead of image files")
    s.add_argument("--model", default=DEFAULT_MODEL)
    s.add_argument("--out", required=True, help="a .parquet file, or with --engine a folder of shards")
    s.add_argument("--batch-size", type=int, default=16)
    s.add_argument("--engine", choices=["local", "ray"],
                   help="sharded, resumable output with an errors table; 'ray' runs on Ray Data")
    s.add_argument("--workers", type=int, help="Ray actors (default: one per CPU, or per GPU)")
    s.add_argument("--gpus-per-worker", type=float, default=0.0)
    s.add_argument("--ray-address", help="join a running Ray cluster ('auto' or host:port); default: local Ray")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=_cmd_embed)

