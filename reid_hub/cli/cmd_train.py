"""`reid-hub train`: train or fine-tune an embedding model (local, torchrun or Ray Train)."""
from __future__ import annotations

import argparse
from typing import Any


def _cmd_train(args: argparse.Namespace) -> int:
    from ..training.loop import TrainConfig, finetune_config, train

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
        from ..training.ray_trainer import train_on_ray

        folder = train_on_ray(cfg, args.workers, gpus_per_worker=args.gpus_per_worker, ray_address=args.ray_address,
                              progress=not args.quiet)
    else:
        from ..training.ddp import init_from_env

        ctx = init_from_env(args.device)  # under torchrun: join its process group (gloo on CPU, NCCL on GPU)
        folder = train(cfg, progress=not args.quiet)
        if not ctx.is_main:
            return 0
    print(f"saved model to {folder}")
    return 0


def add_parsers(sub: Any, runtime: argparse.ArgumentParser, default_model: str) -> None:
    """Add the train command to the `reid-hub` parser."""
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
                   help="ray: data-parallel on Ray Train (DDP); local also runs under torchrun -m reid_hub train")
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

