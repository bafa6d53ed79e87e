"""`reid-hub video cluster` and `reid-hub video embed`: identities of one video's detections; descriptors of many videos."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError


def _cmd_video_cluster(args: argparse.Namespace) -> int:
    import torch

    from ..app.clips import ClipRequest, cluster_clip, place_clip
    from ..models.loading import from_pretrained
    from ..video import ClusterConfig, HeadConfig, is_crop_table

    if args.k is not None and args.k < 1:
        raise ConfigError("--k must be at least 1")
    if not 0 <= args.min_score <= 1:
        raise ConfigError("--min-score lies in [0, 1]")
    head = HeadConfig(epochs=args.epochs, temporal=args.temporal, pseudo_labels=args.pseudo_labels,
                      confidence_weighting=not args.no_confidence_weighting)
    config = ClusterConfig(k=args.k, k_max=args.k_max, use_head=not args.no_head, tracklets=None if args.tracklets is None else args.tracklets == "on", head=head,
                           color_weight=args.color_weight)
    model = from_pretrained(args.model)
    if torch.cuda.is_available():
        model = model.cuda()
    crop_video = is_crop_table(args.video)  # a crop-video: the table is the detections
    if crop_video and args.detections:
        raise ConfigError(f"{args.video} is a crop table (frame, path columns): give no --detections")
    if not crop_video and not args.detections:
        raise ConfigError(f"{args.video}: a video or frame folder needs --detections (a table of crops with "
                          "frame and path columns needs none)")
    name = args.video_name or Path(args.video).name
    req = ClipRequest(name, video=None if crop_video else Path(args.video),
                      detections=None if crop_video else Path(args.detections), crops=Path(args.video) if crop_video
                      else None, config=config, detections_format=args.format, min_score=args.min_score,
                      padding=args.padding, cache_dir=Path(args.cache_dir) if args.cache_dir else None,
                      progress=not args.quiet)
    result, source = cluster_clip(model, req, Path(args.video).parent)
    out = Path(args.out) if args.out else Path(args.video).parent / f"{Path(args.video).stem}_ids"
    result.write(out, source, padding=args.padding)
    summary: dict[str, Any] = {"out": str(out), "k": result.k, "detections": len(result.detections),
                               "cluster_sizes": result.cluster_sizes(),
                               "conflicts": int(result.detections["conflict"].sum()),
                               "timings_s": {k: round(v, 3) if isinstance(v, float) else v
                                             for k, v in result.timings.items()}}
    if result.k_estimate is not None:
        summary["k_estimate"] = result.k_estimate.to_dict()
    if args.gallery:
        from ..gallery import open_gallery

        gallery = open_gallery(args.gallery, model)
        try:
            summary.update(place_clip(gallery, result, source, name, species=args.species or "",
                                      encounter=args.encounter, enroll=not args.match_only, threshold=args.threshold))
        finally:
            gallery.close()
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _cmd_video_embed(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..scale.embedding import EmbedJob, embed_videos

    table = Path(args.table)
    if not table.is_file():
        raise ConfigError(f"no such table: {table}")
    videos = pd.read_csv(table)
    if not {"video", "detections"} <= set(videos.columns):
        raise ConfigError(f"{table} needs the columns video,detections[,name]")
    for col in ("video", "detections"):  # relative paths are relative to the table
        videos[col] = [str(p) if Path(p).is_absolute() else str(table.parent / p) for p in videos[col]]
    job = EmbedJob(args.model, args.out, engine=args.engine, workers=args.workers, ray_address=args.ray_address,
                   gpus_per_worker=args.gpus_per_worker, backend=args.backend)
    print(json.dumps(embed_videos(videos, job, padding=args.padding, min_score=args.min_score), indent=2))
    return 0


def add_parsers(sub: Any, runtime: argparse.ArgumentParser, default_model: str) -> None:
    """Add the video command to the `reid-hub` parser."""
    DEFAULT_MODEL = default_model
    s = sub.add_parser("video", help="identify every animal of a video without labels")
    vsub = s.add_subparsers(dest="video_command", required=True)
    v = vsub.add_parser("cluster", help="cluster a video's detections into k animals (self-supervised head)", parents=[runtime])
    v.add_argument("video", help="video file (mp4/avi/mov...), a folder of frame images, or a crop table "
                   "(CSV/Parquet with frame and path columns: a crop-video, no --detections)")
    v.add_argument("--detections", help="MegaDetector JSON, MOT txt, COCO JSON or CSV (not for a crop table)")
    v.add_argument("--format", default="auto", choices=["auto", "megadetector", "mot", "coco", "csv"])
    v.add_argument("--k", type=int, help="number of animals (estimated when left out)")
    v.add_argument("--k-max", type=int, help="largest k tried when estimating")
    v.add_argument("--min-score", type=float, default=0.5, help="detection confidence threshold")
    v.add_argument("--padding", type=float, default=0.1, help="crop padding, share of the box side")
    v.add_argument("--model", default=DEFAULT_MODEL)
    v.add_argument("--out", help="output folder (labels.csv, tracks.txt MOT, prototypes.npz, crops/)")
    v.add_argument("--epochs", type=int, default=20)
    v.add_argument("--pseudo-labels", default="prototypes", choices=["prototypes", "pairwise"])
    v.add_argument("--temporal", action="store_true", help="add IoU temporal positives between nearby frames")
    v.add_argument("--tracklets", choices=("on", "off"), help="smooth labels along unambiguous IoU tracklets "
                   "(default: on for a video, off for a crop table)")
    v.add_argument("--no-head", action="store_true", help="plain constrained k-means on the descriptors")
    v.add_argument("--color-weight", type=float, default=0.5,
                   help="weight of the crops' colour histograms beside the model's descriptors (0: off)")
    v.add_argument("--no-confidence-weighting", action="store_true")
    v.add_argument("--cache-dir", help="descriptor cache (default ~/.cache/reid-hub/descriptors)")
    v.add_argument("--gallery", help="gallery folder: give the clusters persistent IDs")
    v.add_argument("--match-only", action="store_true", help="with --gallery: match but do not enroll")
    v.add_argument("--threshold", type=float, help="open-set threshold (default: the gallery's calibrated one)")
    v.add_argument("--video-name", help="name of the video in the gallery (default: file name)")
    v.add_argument("--encounter", help="videos sharing this name show the same animals at the same time (the "
                   "synchronized cameras of one recording): matched to each other's individuals, closed-set")
    v.add_argument("--species", help="species of new individuals")
    v.add_argument("--quiet", action="store_true", help="no progress bars")
    v.set_defaults(func=_cmd_video_cluster)
    v = vsub.add_parser("embed", help="crop descriptors of many videos (Ray or local), one Parquet per video", parents=[runtime])
    v.add_argument("table", help="CSV with columns video,detections[,name]")
    v.add_argument("--out", required=True)
    v.add_argument("--model", default=DEFAULT_MODEL)
    v.add_argument("--engine", choices=["local", "ray"], default="local")
    v.add_argument("--workers", type=int)
    v.add_argument("--gpus-per-worker", type=float, default=0.0)
    v.add_argument("--ray-address")
    v.add_argument("--padding", type=float, default=0.1)
    v.add_argument("--min-score", type=float, default=0.5)
    v.set_defaults(func=_cmd_video_embed)

