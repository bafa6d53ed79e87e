"""The `reid-hub` command line: models, info, embed, train, evaluate, gallery, video, serve, demo.

Every expected failure prints one `error: ...` line on stderr and exits with the code of its
error type (see reid_hub.errors); unexpected ones exit 70.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from .backends import BACKENDS, set_runtime
from .errors import ConfigError, ReidHubError

log = logging.getLogger("reid_hub.cli")


def _cmd_models(args: argparse.Namespace) -> int:
    from .hub import DEFAULT_MODEL, release_names
    from .model import get_model_config, list_models

    print("registered configs (create_model):")
    for name in list_models():
        cfg = get_model_config(name)
        print(f"  {name:14s} {cfg.backbone:24s} {cfg.preprocess.size:4d}px  {cfg.description}")
    print("released models (from_pretrained, offline):")
    for name in release_names():
        print(f"  {name}{'  (default)' if name == DEFAULT_MODEL else ''}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from .hub import from_pretrained

    model = from_pretrained(args.model)
    info = {"config": model.config.to_dict(), "embedding_dim": model.embedding_dim,
            "parameters": sum(p.numel() for p in model.parameters()), "fingerprint": model.fingerprint()}
    print(json.dumps(info, indent=2))
    return 0


def _image_table(images: Sequence[str]):
    """A data table of plain image files (no identities)."""
    import pandas as pd

    missing = [p for p in images if not Path(p).is_file()]
    if missing:
        raise ConfigError(f"no such file: {missing[0]}")
    return pd.DataFrame({"image_id": [str(p) for p in images], "image": [str(p) for p in images],
                         "identity": "", "species": "", "bbox": None, "dataset": "cli", "label": ""})


def _cmd_embed(args: argparse.Namespace) -> int:
    from . import data as rdata
    from .evaluate import embed_table
    from .hub import from_pretrained

    if not args.images and not args.data:
        raise ConfigError("give image files or --data sources")
    if args.engine:  # sharded, resumable output folder; Ray Data or in-process
        from .distributed import EmbedJob, embed_collection

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


def _cmd_train(args: argparse.Namespace) -> int:
    from .train import TrainConfig, finetune_config, train

    common: dict[str, Any] = dict(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                                  unseen_fraction=args.unseen_fraction, checkpoint_every=args.checkpoint_every,
                                  device=args.device, save_dtype=args.save_dtype)
    if args.max_steps:
        common["max_steps"] = args.max_steps
    if args.lr:
        common["lr"] = args.lr
    if args.init_from:
        cfg = finetune_config(args.init_from, args.data, args.out, **common)
    else:
        overrides = {"preprocess": {"size": args.size}} if args.size else {}
        cfg = TrainConfig(data=args.data, out_dir=args.out, model=args.model, pretrained=args.pretrained,
                          overrides=overrides, balanced=args.balanced, exclude_species=args.exclude_species,
                          frozen_blocks=args.frozen_blocks, views=args.views, distill_weight=args.distill,
                          layer_decay=args.layer_decay, wise_alpha=args.wise_alpha, **common)
    cfg.validate()
    if args.engine == "ray":
        from .train_ray import train_on_ray

        folder = train_on_ray(cfg, args.workers, gpus_per_worker=args.gpus_per_worker, ray_address=args.ray_address,
                              progress=not args.quiet)
    else:
        from .train_distributed import init_from_env

        ctx = init_from_env(args.device)  # under torchrun: join its process group (gloo on CPU, NCCL on GPU)
        folder = train(cfg, progress=not args.quiet)
        if not ctx.is_main:
            return 0
    print(f"saved model to {folder}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from . import data as rdata
    from .evaluate import evaluate_model, method_names, write_results
    from .hub import from_pretrained

    model = from_pretrained(args.model)
    df = rdata.load_sources(args.data)
    if args.split:
        df = rdata.apply_split(df, args.split)
    else:
        df = rdata.split_by_identity(df, args.unseen_fraction, args.seed)
    methods = [m.strip() for m in (args.methods or "model," + args.baselines).split(",") if m.strip()]
    unknown = sorted(set(methods) - set(method_names()))
    if unknown or not methods:
        raise ConfigError(f"--methods takes a comma list of {', '.join(method_names())}; got {unknown or methods}")
    # the model's own scores are always reported: every other method is read against them
    if args.shortlist is not None and args.shortlist < 1:
        raise ConfigError("--shortlist must be at least 1")
    if args.cross_column and args.cross_column not in df.columns:
        raise ConfigError(f"--cross-column {args.cross_column!r}: no data source has that column")
    results = evaluate_model(model, df, baselines=[m for m in methods if m != "model"],
                             imagenet_backbone=args.imagenet_backbone, seed=args.seed,
                             cross_column=args.cross_column, shortlist=args.shortlist,
                             calibration=args.calibration)
    json_path, png = write_results(results, args.out)
    print(_results_table(results))
    print(f"wrote {json_path} and {png}")
    return 0


def _results_table(results: dict[str, Any]) -> str:
    methods = results["methods"]
    lines = [f"{'species':14s} {'method':18s} {'top1':>6s} {'top5':>6s} {'mAP':>6s} {'AUROC':>6s} {'bal.acc':>7s}"]
    for s, entry in results["species"].items():
        for m in methods:
            r = entry[m]
            o = r.get("open_set", {})
            lines.append(f"{s:14s} {m:18s} {r['top1']:6.3f} {r['top5']:6.3f} {r['mAP']:6.3f} "
                         f"{o.get('auroc', float('nan')):6.3f} {o.get('balanced_accuracy', float('nan')):7.3f}")
    return "\n".join(lines)


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    if args.frames is None and args.start is None:
        print(run_demo(args.model))
    else:  # --frames alone keeps its first meaning: the first N frames of the clip
        print(run_demo(args.model, frames=args.frames or 1500, start=args.start or 0))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    import runpy

    app = Path(__file__).resolve().parent.parent / "serve" / "app.py"
    if not app.is_file():
        raise ConfigError(f"serve/app.py not found at {app}: run from a source checkout")
    argv = ["--model", args.model, "--port", str(args.port), "--host", args.host]
    if args.gallery:
        argv += ["--gallery", args.gallery]
    if args.token:
        argv += ["--token", args.token]
    if args.discovery:
        argv += ["--discovery", args.discovery]
    module = runpy.run_path(str(app))
    module["main"](argv)
    return 0


def _checked(cast: Any, ok: Any, rule: str) -> Any:
    """An argparse type: `cast` the text, then refuse values for which `ok` is false, saying `rule`."""
    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if cast is int else 'a number'}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(rule)
        return value
    return parse


_positive_int = _checked(int, lambda v: v >= 1, "must be at least 1")
_non_negative_int = _checked(int, lambda v: v >= 0, "must be at least 0")
_probability = _checked(float, lambda v: 0 <= v <= 1, "a probability lies in [0, 1]")
_open_unit = _checked(float, lambda v: 0 < v < 1, "lies strictly between 0 and 1")


def _on_off(text: str) -> bool:
    if text.lower() not in ("on", "off", "true", "false", "1", "0"):
        raise argparse.ArgumentTypeError("on or off")
    return text.lower() in ("on", "true", "1")


def _cmd_gallery(args: argparse.Namespace) -> int:
    from .gallery import export_gallery, import_gallery, open_gallery
    from .hub import from_pretrained
    from .imaging import load_image

    model = from_pretrained(args.model)
    if args.action == "import":
        g = import_gallery(args.archive, args.gallery, model)
        print(f"imported {len(g)} images of {len(g.individuals())} individuals into {args.gallery}")
        return 0
    g = open_gallery(args.gallery, model, create=args.action == "enroll")
    if args.action == "enroll":
        if not args.images or not args.name:
            raise ConfigError("enroll needs --name and image files")
        imgs = [load_image(p) for p in args.images]
        iid = g.add_individual(args.name, species=args.species or "")
        g.enroll(iid, model.embed(imgs), sources=[str(p) for p in args.images], images=imgs)
        print(f"enrolled {len(imgs)} images as {iid} ({args.name})")
    elif args.action == "search":
        if not args.images:
            raise ConfigError("search needs an image file")
        for path, res in zip(args.images, g.search(model.embed([load_image(p) for p in args.images]), k=args.k)):
            print(f"{path}: {'NEW individual' if res.is_new else 'known'} (threshold {res.threshold})")
            for m in res.matches:
                print(f"  {m.score:.3f}  {m.individual_id}  {m.display_name}  [{m.species}]")
    elif args.action == "list":
        for ind in g.individuals():
            print(f"{ind['id']}  {ind['display_name']}  [{ind['species']}]  {ind['images']} images")
    elif args.action == "identify":
        if not args.images:
            raise ConfigError("identify needs an image file")
        for path in args.images:
            img = load_image(path)
            res = g.identify(model.embed([img]), img, species=args.species, k=args.k, shortlist=args.shortlist)
            print(json.dumps({"image": str(path), **res.to_dict()}, indent=2))
            if args.evidence and res.matches and res.matches[0].matcher:
                out = Path(args.evidence)
                out.parent.mkdir(parents=True, exist_ok=True)
                target = out / f"{Path(path).stem}-evidence.png" if out.suffix.lower() != ".png" else out
                g.evidence(img, res.matches[0].image_id, query_features=res.query_features).save(target)
                print(f"evidence: {target}")
    elif args.action == "calibrate":
        print(json.dumps(g.calibrate(), indent=2))
    elif args.action == "recalibrate":
        from tqdm.auto import tqdm

        with tqdm(total=100, desc="recalibrate", unit="%", leave=False) as bar:
            def progress(fraction: float, message: str) -> None:
                bar.set_postfix_str(message)
                bar.update(round(100 * fraction) - bar.n)
            report = g.recalibrate(kind=args.calibration, shortlist=args.shortlist, progress=progress)
        print(json.dumps(report, indent=2, default=float))
    elif args.action == "configure":
        from .gallery import set_matcher

        if args.matcher:
            set_matcher(g, args.matcher, species=args.species)
        with g._tx():
            for key, value in (("shortlist", args.shortlist), ("accept", args.accept),
                               ("auto_accept", args.auto_accept)):
                if value is not None:
                    g._set_meta(key, value)
        meta = g._meta()
        print(json.dumps({k: meta.get(k) for k in ("matcher", "matcher_by_species", "shortlist", "accept",
                                                   "auto_accept")}, indent=2))
    elif args.action == "export":
        if args.format == "camtrap-dp":
            from .gallery.camtrap import export_camtrap_dp

            print(f"wrote {export_camtrap_dp(g, args.archive or 'camtrap-dp.zip')}")
        elif args.format == "sightings":
            from .gallery.camtrap import export_sightings_csv

            print(f"wrote {export_sightings_csv(g, args.archive or 'sightings.csv')}")
        else:
            if not args.archive:
                raise ConfigError("export needs --archive FILE.tar.gz")
            print(f"wrote {export_gallery(g, args.archive)}")
    return 0


def _cmd_review(args: argparse.Namespace) -> int:
    from .gallery import Gallery, review

    g = Gallery.open_existing(args.gallery)
    if args.review_action == "list":
        items, total = review.pending(g, args.offset, args.limit, args.status)
        print(f"{total} {args.status} proposal(s)")
        for p in items:
            c = p.current or {}
            prob = "-" if p.probability is None else f"{p.probability:.2f}"
            print(f"#{p.id}  {p.suggestion:6s}  P={prob}  {p.source or p.video or ''}  n={p.n}  "
                  f"candidate: {c.get('display_name', '-')} ({c.get('individual_id', '-')})")
        return 0
    if args.review_action == "export-pairs":
        import pandas as pd

        pairs = review.labelled_pairs(g)
        out = Path(args.out or "review_pairs.csv")
        pd.DataFrame(pairs, columns=["proposal_id", "species", "source", "individual_id", "image_id", "same",
                                     "global_score", "local_score", "probability", "decided_by"]).to_csv(out, index=False)
        print(f"wrote {len(pairs)} labelled pairs to {out}")
        return 0
    if args.id is None:
        raise ConfigError(f"review {args.review_action} needs --id")
    if args.review_action == "show":
        print(json.dumps({**review.get(g, args.id).to_dict(), "audit": review.audit_log(g, args.id)}, indent=2,
                         default=float))
        return 0
    out = review.decide(g, args.id, args.review_action, individual_id=args.individual, display_name=args.name,
                        force=args.force, actor=args.actor)
    print(json.dumps(out, indent=2, default=float))
    return 0


def _cmd_video_cluster(args: argparse.Namespace) -> int:
    import torch

    from .hub import from_pretrained
    from .video import ClusterConfig, HeadConfig, assign_video, cluster_crops, cluster_video, is_crop_table

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
    if is_crop_table(args.video):  # a crop-video: the table is the detections
        if args.detections:
            raise ConfigError(f"{args.video} is a crop table (frame, path columns): give no --detections")
        result, source = cluster_crops(args.video, model, config, min_score=args.min_score, cache_dir=args.cache_dir,
                                       progress=not args.quiet), None
    else:
        if not args.detections:
            raise ConfigError(f"{args.video}: a video or frame folder needs --detections (a table of crops with "
                              "frame and path columns needs none)")
        result, source = cluster_video(args.video, args.detections, model, config, fmt=args.format,
                                       min_score=args.min_score, padding=args.padding, cache_dir=args.cache_dir,
                                       progress=not args.quiet)
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
        from .gallery import open_gallery

        gallery = open_gallery(args.gallery, model)
        try:
            res = assign_video(gallery, result, video_name=args.video_name or Path(args.video).name,
                               enroll=not args.match_only, species=args.species or "", threshold=args.threshold,
                               encounter=args.encounter)
        finally:
            gallery.close()
        summary["assignments"] = [a.__dict__ for a in res]
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _cmd_video_embed(args: argparse.Namespace) -> int:
    import pandas as pd

    from .distributed import EmbedJob, embed_videos

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


def _cmd_discover(args: argparse.Namespace) -> int:
    from .discovery.run import DiscoverRequest, discover
    from .discovery.session import DiscoveryConfig

    if args.answers and not args.answers_from:
        raise ConfigError("--answers needs --answers-from COLUMN")
    cfg = DiscoveryConfig(adapter=args.adapter, strategy=args.questions,
                          **({"threshold": args.threshold} if args.threshold is not None else {}))
    summary = discover(DiscoverRequest(args.table, args.out, args.model, args.species, args.track_column,
                                       args.frame_column, args.answers, args.answers_from, args.batch, cfg,
                                       args.gallery))
    print(f"{summary['images']} images -> {summary['individuals']} individuals "
          f"(threshold {summary['threshold']:.3f}); wrote {args.out}/individuals.csv, "
          f"questions.csv, summary.json" + (", curve.json" if args.answers else ""))
    return 0


def _cmd_questions(args: argparse.Namespace) -> int:
    from .discovery.run import open_discovery

    d = open_discovery(args.dir)
    if args.questions_action == "answer":
        if args.answer is None:
            raise ConfigError("answer takes one of: same, different, skip, undo")
        if args.answer == "undo":
            d.undo(args.actor)
        else:
            if args.a is None or args.b is None:
                raise ConfigError("answer needs the two rows: --a ROW --b ROW (see questions list)")
            d.answer(args.a, args.b, args.answer, args.actor)
        d.write(args.dir)
        print(f"{len(d.answered())} answers in force; {int(d.labels.max()) + 1} individuals")
        return 0
    print(d.question_table(args.limit).to_string(index=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .hub import DEFAULT_MODEL

    p = argparse.ArgumentParser(prog="reid-hub", description="Multi-species animal re-identification.")
    p.add_argument("--version", action="version", version=f"reid-hub {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = p.add_subparsers(dest="command", required=True)
    runtime = argparse.ArgumentParser(add_help=False)
    runtime.add_argument("--backend", choices=BACKENDS, help="inference backend (default: $REID_HUB_BACKEND or "
                         "auto: ONNX Runtime on CPU when installed, torch on a GPU)")
    runtime.add_argument("--threads", type=_positive_int, help="intra-op threads of the forward (default: "
                         "$REID_HUB_THREADS, $OMP_NUM_THREADS, or every CPU)")

    sub.add_parser("models", help="list registered configs and released models").set_defaults(func=_cmd_models)

    s = sub.add_parser("info", help="show a model's config and fingerprint")
    s.add_argument("model", nargs="?", default=DEFAULT_MODEL)
    s.set_defaults(func=_cmd_info)

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

    s = sub.add_parser("train", help="train or fine-tune an embedding model")
    s.add_argument("--data", nargs="+", required=True, help="metadata.csv folders / wildlife-datasets / Parquet")
    s.add_argument("--out", required=True, help="run folder (resumed when it exists)")
    s.add_argument("--model", default="effv2-b0", help="registered config name")
    s.add_argument("--pretrained", action="store_true", help="start from the offline ImageNet weights")
    s.add_argument("--init-from", help="fine-tune a saved model on new data (new classifier, lower backbone LR)")
    s.add_argument("--epochs", type=int, default=10)
    s.add_argument("--max-steps", type=int)
    s.add_argument("--batch-size", type=int, default=32)
    s.add_argument("--lr", type=float)
    s.add_argument("--size", type=int, help="input size override")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--unseen-fraction", type=float, default=0.3)
    s.add_argument("--checkpoint-every", type=int, default=50)
    s.add_argument("--balanced", action="store_true", help="class-balanced sampling instead of plain shuffling")
    s.add_argument("--device")
    s.add_argument("--save-dtype", default="float32", choices=["float32", "float16"])
    s.add_argument("--exclude-species", nargs="*", default=[], help="leave these species out (zero-shot runs)")
    s.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="ray: data-parallel on Ray Train (DDP); local also runs under torchrun -m reid_hub.train")
    s.add_argument("--workers", type=int, default=2, help="Ray Train workers (with --engine ray)")
    s.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs per Ray worker (0: CPU, gloo)")
    s.add_argument("--ray-address", help="join a running Ray cluster ('auto' or host:port); default: local Ray")
    s.add_argument("--frozen-blocks", type=int, default=0,
                   help="freeze the stem and this many backbone stages; their outputs are cached per view")
    s.add_argument("--views", type=int, default=4, help="augmented views per image in the trunk cache")
    s.add_argument("--distill", type=float, default=0.0, help="weight of the distillation toward the initial backbone")
    s.add_argument("--layer-decay", type=float, default=1.0, help="backbone lr x decay per stage below the top")
    s.add_argument("--wise-alpha", type=float, default=1.0, help="WiSE-FT: keep this share of the fine-tuning")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=_cmd_train)

    s = sub.add_parser("evaluate", help="evaluate on unseen identities against baselines", parents=[runtime])
    s.add_argument("--model", default=DEFAULT_MODEL)
    s.add_argument("--data", nargs="+", required=True)
    s.add_argument("--split", help="split.csv of a training run (default: a fresh seeded identity split)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--unseen-fraction", type=float, default=0.3,
                   help="share of identities held out per species; 1 = every identity (zero-shot data)")
    s.add_argument("--methods", help="comma list of: model, imagenet, fused, a matcher (sift, xfeat, aliked-lightglue, "
                                     "...), fused-<matcher> (default model + --baselines)")
    s.add_argument("--shortlist", type=int, help="global candidates re-scored by local matches (fused; default: the "
                                               "matcher's, 100 for SIFT)")
    s.add_argument("--calibration", choices=("isotonic", "logistic"), default="isotonic",
                   help="score -> P(same individual) fit for fused methods")
    s.add_argument("--baselines", default="imagenet,sift", help="comma list of: imagenet, sift")
    s.add_argument("--cross-column", help="never match a query against images sharing this column (e.g. camera)")
    s.add_argument("--imagenet-backbone", default="lite0")
    s.add_argument("--out", default="results/evaluation.json")
    s.set_defaults(func=_cmd_evaluate)

    s = sub.add_parser("serve", help="start the REST API + Gradio UI (source checkout)", parents=[runtime])
    s.add_argument("--model", default=DEFAULT_MODEL)
    s.add_argument("--gallery", help="gallery folder (default: the demo gallery, built on first start)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=7860)
    s.add_argument("--token", help="bearer token required by write endpoints")
    s.add_argument("--discovery", help="an output folder of reid-hub discover: serve its pair questions")
    s.set_defaults(func=_cmd_serve)

    s = sub.add_parser("gallery", help="manage a gallery: enroll, search, identify, list, calibrate, recalibrate, "
                                       "configure, export, import", parents=[runtime])
    s.add_argument("action", choices=["enroll", "search", "identify", "list", "calibrate", "recalibrate", "configure",
                                      "export", "import"])
    s.add_argument("images", nargs="*")
    s.add_argument("--gallery", required=True, help="gallery folder")
    s.add_argument("--model", default=DEFAULT_MODEL)
    s.add_argument("--name", help="display name (enroll)")
    s.add_argument("--species", help="species (enroll; identify: search only this species)")
    s.add_argument("--k", type=int, default=5)
    s.add_argument("--archive", help="export/import file: .tar.gz archive, or camtrap-dp .zip / folder, sightings .csv")
    s.add_argument("--format", choices=("archive", "camtrap-dp", "sightings"), default="archive", help="export format")
    s.add_argument("--shortlist", type=_positive_int, help="global candidates verified by local matches "
                   "(identify, recalibrate, configure)")
    s.add_argument("--evidence", help="identify: write the best match's evidence PNG here (file or folder)")
    s.add_argument("--calibration", choices=("isotonic", "logistic"), default="isotonic", help="recalibrate: fit")
    s.add_argument("--matcher", help="configure: local matcher of the gallery (or of --species)")
    s.add_argument("--accept", type=_probability, help="configure: auto-accept band on P(same individual)")
    s.add_argument("--auto-accept", type=_on_off, help="configure: on / off (off: every decision is reviewed)")
    s.set_defaults(func=_cmd_gallery)

    s = sub.add_parser("discover", help="group an unlabelled photo collection into individuals; questions to ask",
                       parents=[runtime])
    s.add_argument("table", help="a folder of images, or a CSV/Parquet table with a path column (metadata.csv)")
    s.add_argument("--out", required=True, help="output folder: individuals.csv, questions.csv, summary.json")
    s.add_argument("--model", default=None, help="model name or folder (default: the released default)")
    s.add_argument("--species", help="only rows of this species (or: the species of every row)")
    s.add_argument("--gallery", help="a gallery folder: each discovered individual is matched to its known "
                                     "individuals and sent to its review queue (DIR/gallery.csv)")
    s.add_argument("--track-column", help="rows sharing a value show one animal (must-links)")
    s.add_argument("--frame-column", help="rows sharing a value are different animals (cannot-links)")
    s.add_argument("--answers", type=_non_negative_int, default=0,
                   help="simulate a reviewer answering this many questions (writes curve.json)")
    s.add_argument("--answers-from", help="the column of true identities the simulated reviewer answers from")
    s.add_argument("--batch", type=_positive_int, default=10, help="answers applied before the next questions")
    s.add_argument("--questions", choices=["gain", "random"], default="gain",
                   help="how questions are chosen (random: the baseline)")
    s.add_argument("--adapter", type=_on_off, default=False,
                   help="learn a per-species adapter from answers (off by default: it has not yet beaten none)")
    s.add_argument("--threshold", type=_open_unit, default=None,
                   help="grouping threshold on the neighbourhood similarity (default: the label-free one)")
    s.set_defaults(func=_cmd_discover)

    s = sub.add_parser("questions", help="list or answer the pair questions of a discovery folder")
    s.add_argument("questions_action", choices=["list", "answer"])
    s.add_argument("dir", help="the --out folder of reid-hub discover")
    s.add_argument("answer", nargs="?", choices=["same", "different", "skip", "undo"])
    s.add_argument("--a", type=_non_negative_int, help="answer: first row (a_row of questions list)")
    s.add_argument("--b", type=_non_negative_int, help="answer: second row (b_row)")
    s.add_argument("--limit", type=_positive_int, default=20)
    s.add_argument("--actor", default="local", help="who answers (audit trail)")
    s.set_defaults(func=_cmd_questions)

    s = sub.add_parser("review", help="review identity proposals: list, show, confirm, reject, new, undo, "
                                      "export-pairs")
    s.add_argument("review_action", choices=["list", "show", "confirm", "reject", "new", "undo", "export-pairs"])
    s.add_argument("--gallery", required=True, help="gallery folder")
    s.add_argument("--id", type=int, help="proposal id")
    s.add_argument("--individual", help="confirm into / reject this individual (default: the current candidate)")
    s.add_argument("--name", help="new: the new individual's display name")
    s.add_argument("--force", action="store_true", help="new: allow a name already used in the species")
    s.add_argument("--actor", default="local", help="who decides (audit trail)")
    s.add_argument("--status", default="pending", choices=["pending", "confirmed", "new", "auto-accepted"])
    s.add_argument("--offset", type=int, default=0)
    s.add_argument("--limit", type=_positive_int, default=50)
    s.add_argument("--out", help="export-pairs: CSV path")
    s.set_defaults(func=_cmd_review)

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

    s = sub.add_parser("demo", help="run the default model on the shipped demo video", parents=[runtime])
    s.add_argument("--model", default=DEFAULT_MODEL)
    s.add_argument("--frames", type=_positive_int, help="frames of the demo clip to use from --start (default: "
                   "frames 750-1249, which run in under a minute on 2 cores; --frames alone: the first N; 1500: all)")
    s.add_argument("--start", type=_non_negative_int, help="first frame used (with --frames)")
    s.set_defaults(func=_cmd_demo)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the `reid-hub` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if getattr(args, "backend", None) or getattr(args, "threads", None):
        set_runtime(args.backend, args.threads)
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
    try:
        return int(args.func(args) or 0)
    except ReidHubError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: say so plainly, with the type, and a distinct code
        log.debug("unexpected error", exc_info=True)
        print(f"internal error ({type(exc).__name__}): {exc}", file=sys.stderr)
        return 70


if __name__ == "__main__":
    sys.exit(main())
